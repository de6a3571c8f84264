"""deploy/.env.example names every variable the service and the kit read, and no other."""

from __future__ import annotations

import re

from rivyahooks_foundation.settings import VARIABLES
from tests.support.compose import ASSIGNMENT, COMPOSE_FILE, ENV_EXAMPLE
from tests.support.processes import ROOT

# Shown commented out with an example value, not the default: compose sets them itself.
EXAMPLES_NOT_DEFAULTS = {"DATABASE_URL", "BROKER_URL"}


def settings_variables() -> set[str]:
    """Return every environment variable the settings read."""
    return {variable.name for variable in VARIABLES}


def kit_variables() -> set[str]:
    """Return the variables the Procfile, rivyahooks/gunicorn_conf.py and compose.yaml read."""
    procfile = re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", (ROOT / "Procfile").read_text())
    gunicorn = re.findall(
        r"os\.environ\.get\(\s*['\"]([A-Z][A-Z0-9_]*)",
        (ROOT / "rivyahooks" / "gunicorn_conf.py").read_text(),
    )
    compose = re.findall(r"\$\{([A-Z][A-Z0-9_]*)", COMPOSE_FILE.read_text())
    return {*procfile, *gunicorn, *compose}


def example() -> dict[str, tuple[bool, str]]:
    """Return each named variable: (commented out, value)."""
    named: dict[str, tuple[bool, str]] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if match := ASSIGNMENT.match(line):
            commented, name, value = match.groups()
            assert name not in named, f"{name} is named twice"
            named[name] = (commented is not None, value)
    return named


def test_every_variable_is_named_and_nothing_else() -> None:
    wanted = settings_variables() | kit_variables()
    named = set(example())
    assert sorted(wanted - named) == [], "missing from deploy/.env.example"
    assert sorted(named - wanted) == [], "named in deploy/.env.example but read by nothing"


def test_commented_out_settings_show_their_defaults() -> None:
    defaults = {variable.name: variable.format(variable.default) for variable in VARIABLES}
    shown = {
        name: value
        for name, (commented, value) in example().items()
        if commented and name in defaults and name not in EXAMPLES_NOT_DEFAULTS
    }
    assert shown == {name: defaults[name] for name in shown}


def test_values_are_plain_for_every_reader() -> None:
    # docker, podman and systemd read these files differently: quotes and trailing comments
    # would become part of a value for some of them.
    for name, (_, value) in example().items():
        assert not value.startswith(("'", '"')), name
        assert " #" not in value, name
        assert value == value.strip(), name
