"""The Procfile holds exactly the role lines the package carries for `rivya-hooks serve`."""

from __future__ import annotations

from rivyahooks.procfile import procfile_roles
from rivyahooks.roles import RELEASE, ROLES, SERVICE_ROLES, procfile_text
from tasks import names
from tests.support.processes import ROOT


def test_the_procfile_is_the_packages_role_lines() -> None:
    assert procfile_roles(ROOT / "Procfile") == ROLES
    assert (ROOT / "Procfile").read_text() == procfile_text()


def test_every_role_is_release_or_a_service_role() -> None:
    assert set(ROLES) == {RELEASE, *SERVICE_ROLES}


def test_only_the_outbound_role_names_the_outbound_queue() -> None:
    # A worker without -Q consumes Celery's default queue alone; a slow app endpoint must
    # never hold the slots that process Rivya's events.
    assert f" -Q {names.OUTBOUND_QUEUE} " in ROLES["outbound"]
    assert " -n outbound@" in ROLES["outbound"]
    for role, line in ROLES.items():
        if role != "outbound":
            assert " -Q " not in line, role
            assert "--queues" not in line, role


def test_outbound_stops_after_the_relay_and_before_beat() -> None:
    order = SERVICE_ROLES.index
    assert order("relay") < order("outbound") < order("beat")
