"""The Procfile's own release and web lines, run as a platform would run them."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from models.events import WebhookEvent
from rivyahooks.procfile import procfile_roles
from rivyahooks_foundation.settings import Settings
from tests.conftest import SECRET, make_event, reference_signed
from tests.support.processes import BIN, ROOT, child_env, free_port, stop, wait_for_http


def procfile_command(role: str, env: dict[str, str]) -> list[str]:
    """Return the argv of a Procfile role, with ${VAR} and ${VAR:-default} substituted."""
    roles = procfile_roles(ROOT / "Procfile")
    assert role in roles, f"Procfile has no {role}: line"
    words = shlex.split(roles[role])
    if words[0] == "exec":  # the shell's own word: the role's command follows it
        words = words[1:]
    return [_expand(word, env) for word in words]


VARIABLE = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}|\$(\w+)")


def _expand(word: str, env: dict[str, str]) -> str:
    """Substitute variables the way the shell a platform runs the line in would."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        default = match.group(2)
        found = env.get(name, "")
        return found if found or default is None else default

    return VARIABLE.sub(value, word)


@pytest.fixture
def web(
    postgres_url: str, redis_url: str, sessions: sessionmaker[Session], tmp_path: Path
) -> Iterator[str]:
    settings = Settings(database_url=postgres_url, broker_url=redis_url, webhook_secrets=(SECRET,))
    port = free_port()
    env = child_env(
        settings,
        HOST="127.0.0.1",
        PORT=str(port),
        WEB_CONCURRENCY="2",
        PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}",
    )
    roles = procfile_roles(ROOT / "Procfile")
    # As a platform runs them: each line as written, through a shell.
    release = subprocess.run(
        ["bash", "-c", roles["release"]],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert release.returncode == 0, release.stderr

    log = open(tmp_path / "web.log", "wb")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        ["bash", "-c", roles["web"]],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_http(url + "/healthz", process)
        yield url
    finally:
        stop(process)
        log.close()


def count(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count()).select_from(WebhookEvent)) or 0)


def test_web_line_takes_a_reference_signed_delivery(
    web: str, sessions: sessionmaker[Session]
) -> None:
    event = make_event()
    body, headers = reference_signed(event)
    with httpx.Client(base_url=web, timeout=10, follow_redirects=False) as client:
        assert client.get("/readyz").status_code == 200
        taken = client.post("/webhooks/rivya", content=body, headers=headers)
        assert taken.status_code == 202
        assert count(sessions) == 1

        tampered = bytearray(body)
        position = body.index(b'"img-1"') + 1
        tampered[position] ^= 0x01
        refused = client.post("/webhooks/rivya", content=bytes(tampered), headers=headers)
        assert refused.status_code == 401
        assert count(sessions) == 1
    with sessions() as session:
        (row,) = session.scalars(select(WebhookEvent))
    assert row.event_id == event["id"]
    assert row.body == body


def test_procfile_variables_are_substituted() -> None:
    argv = procfile_command("worker", {"WORKER_CONCURRENCY": "3"})
    assert argv[argv.index("--concurrency") + 1] == "3"
    argv = procfile_command("worker", {})
    assert argv[argv.index("--concurrency") + 1] == "4"


def web_line_env(tmp_path: Path, **changes: str) -> dict[str, str]:
    """Return the environment of a web role on SQLite, with this environment's bin first."""
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        broker_url=f"sqla+sqlite:///{tmp_path / 'broker.sqlite3'}",
        webhook_secrets=(SECRET,),
    )
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = child_env(
        settings,
        PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}",
        HOME=str(home),
        HOST="127.0.0.1",
        PORT=str(free_port()),
        WEB_CONCURRENCY="2",
    )
    env.pop("XDG_RUNTIME_DIR", None)
    env.update(changes)
    return env


def web_line() -> list[str]:
    # As Heroku, honcho and foreman run it: the line as written, through a shell.
    return ["bash", "-c", procfile_roles(ROOT / "Procfile")["web"]]


def test_web_line_opens_no_control_socket_shared_with_other_instances(tmp_path: Path) -> None:
    env = web_line_env(tmp_path)
    log = open(tmp_path / "web.log", "wb")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        web_line(), cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True
    )
    try:
        wait_for_http(f"http://127.0.0.1:{env['PORT']}/healthz", process)
    finally:
        stop(process)
        log.close()
    assert not (tmp_path / "home" / ".gunicorn").exists()
    assert "Control socket" not in (tmp_path / "web.log").read_text()


# The variable, its bad value, and a part of that value that must never be printed.
BAD_SETTINGS = [
    pytest.param("RIVYA_WEBHOOK_SECRETS", "", None, id="secrets-missing"),
    pytest.param(
        "RIVYA_WEBHOOK_SECRETS", "whsec_Sup3r-S3cret!!", "Sup3r-S3cret", id="secret-not-base64"
    ),
    pytest.param(
        "RIVYA_WEBHOOK_SECRETS",
        f"{SECRET},rotated-Sup3r-S3cret",
        "Sup3r-S3cret",
        id="second-secret-without-prefix",
    ),
    pytest.param("RIVYA_WEBHOOK_SECRETS", "whsec_", None, id="secret-empty"),
    pytest.param("RIVYA_WEBHOOK_SECRETS", "whsec_AA==", None, id="secret-one-byte"),
    pytest.param("RIVYA_WEBHOOK_TOLERANCE_SECONDS", "soon", None, id="tolerance-not-a-number"),
    pytest.param(
        "DATABASE_URL", "mysql://app:Sup3r-S3cret@db/app", "Sup3r-S3cret", id="unknown-driver"
    ),
    pytest.param(
        "DATABASE_URL", "postgres://app:Sup3r-S3cret@db:5432", "Sup3r-S3cret", id="no-database"
    ),
]


@pytest.mark.parametrize(("variable", "value", "never_printed"), BAD_SETTINGS)
def test_web_line_stops_once_on_a_bad_setting(
    variable: str, value: str, never_printed: str | None, tmp_path: Path
) -> None:
    env = web_line_env(tmp_path, **{variable: value})
    done = subprocess.run(
        web_line(), cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    errors = [line for line in output.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, output
    assert variable in errors[0]
    assert "Traceback" not in output
    assert "Booting worker" not in output  # stopped before forking any
    assert SECRET.removeprefix("whsec_") not in output
    if never_printed:
        assert never_printed not in output
