"""Configuration errors as an operator meets them: the installed commands, run as processes.

Each case checks the exit status, the one `error:` line and its `next:` line, that no
secret value is printed and that no traceback is.
"""

from __future__ import annotations

import base64
import importlib.metadata
import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from models.events import EventSource
from models.inbox import insert_event
from rivyahooks.procfile import procfile_roles
from rivyahooks_foundation.settings import Settings
from rivyahooks_simulator.config import SimConfig
from rivyahooks_simulator.server import Simulator
from tests.support.processes import BIN, ROOT, child_env, free_port

PASSWORD = "Sup3r-S3cret-pw"


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    with Simulator(config=SimConfig(queued_seconds=0, processing_seconds=0)).start() as sim:
        yield sim


@pytest.fixture
def environment(settings: Settings, simulator: Simulator) -> dict[str, str]:
    """A working environment: the suite's database and broker, the simulator as Rivya."""
    return child_env(
        settings.replace(
            rivya_api_base=simulator.url,
            rivya_api_key=simulator.api_key,
            webhook_secrets=(random_secret(),),
        )
    )


def random_secret() -> str:
    return "whsec_" + base64.b64encode(uuid.uuid4().bytes + uuid.uuid4().bytes).decode()


def run(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def command(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the installed `rivya-hooks` command."""
    return run([str(BIN / "rivya-hooks"), *args], env, cwd)


def assert_one_error(
    done: subprocess.CompletedProcess[str], status: int, naming: str, never: tuple[str, ...] = ()
) -> str:
    """Check the exit status, one `error:` line naming `naming`, a `next:` line; return it."""
    output = done.stdout + done.stderr
    assert done.returncode == status, output
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    assert naming in errors[0], output
    assert any(line.startswith("next: ") for line in done.stderr.splitlines()), output
    assert "Traceback" not in output
    for secret in never:
        assert secret not in output
    return errors[0]


def doctor(env: dict[str, str], cwd: Path, status: int, never: tuple[str, ...] = ()) -> str:
    """Run doctor; check its exit status, that it printed no traceback and no secret."""
    done = command("doctor", env=env, cwd=cwd)
    output = done.stdout + done.stderr
    assert done.returncode == status, output
    assert "Traceback" not in output
    for secret in never:
        assert secret not in output
    return done.stdout


# --- settings the process cannot start with ---------------------------------------------

# Every command that reads the settings, with the arguments it needs to get that far.
COMMANDS = [
    ("db", "upgrade"),
    ("db", "check"),
    ("events", "list"),
    ("events", "show", "evt_x"),
    ("replay", "evt_x"),
    ("stats",),
    ("reconcile",),
    ("sweep",),
    ("submit", "--model", "m", "--prompt", "p"),
    ("webhooks", "register", "--url", "https://hooks.example/webhooks/rivya"),
    ("webhooks", "status"),
    ("doctor",),
    ("settings",),
    ("serve",),
]


# A driver SQLAlchemy knows but we do not use, and one it cannot even load.
UNSUPPORTED_DATABASES = [
    pytest.param(f"mysql://app:{PASSWORD}@db/app", id="mysql"),
    pytest.param(f"mysqlx://app:{PASSWORD}@db/app", id="unloadable-driver"),
]


@pytest.mark.parametrize("url", UNSUPPORTED_DATABASES)
@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_every_command_refuses_a_bad_setting_in_one_line_with_a_next_step(
    args: tuple[str, ...], url: str, environment: dict[str, str], tmp_path: Path
) -> None:
    environment["DATABASE_URL"] = url
    done = command(*args, env=environment, cwd=tmp_path)
    assert_one_error(done, 2, "DATABASE_URL", never=(PASSWORD,))


@pytest.mark.parametrize("role", ["release", "web", "relay", "worker", "outbound", "beat"])
def test_every_role_refuses_a_driver_sqlalchemy_cannot_load(
    role: str, environment: dict[str, str], tmp_path: Path
) -> None:
    environment["DATABASE_URL"] = f"mysqlx://app:{PASSWORD}@db/app"
    environment["PATH"] = f"{BIN}:{environment['PATH']}"
    environment["PORT"] = str(free_port())
    line = procfile_roles(ROOT / "Procfile")[role]
    done = run(["bash", "-c", line], environment, tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "DATABASE_URL" in output
    assert "Traceback" not in output
    assert PASSWORD not in output


SECRET_TEXT = "Sup3r-S3cret-value"
BAD_SETTINGS = [
    pytest.param("RIVYA_WEBHOOK_SECRETS", "whsec_", id="secret-empty"),
    pytest.param("RIVYA_WEBHOOK_SECRETS", "whsec_AA==", id="secret-one-byte"),
    pytest.param(
        "RIVYA_WEBHOOK_SECRETS", "whsec_" + base64.b64encode(b"x" * 23).decode(), id="secret-23"
    ),
    pytest.param("RIVYA_WEBHOOK_SECRETS", f"whsec_{SECRET_TEXT}!", id="secret-not-base64"),
    pytest.param("DATABASE_URL", f"postgresql://app:{SECRET_TEXT}@db:5432", id="no-database"),
    pytest.param("DATABASE_URL", f"oracle://app:{SECRET_TEXT}@db/app", id="unknown-driver"),
    pytest.param("DATABASE_URL", f"mysqlx://app:{SECRET_TEXT}@db/app", id="unloadable-driver"),
    pytest.param("DATABASE_URL", f"not a url {SECRET_TEXT}", id="unparseable"),
    pytest.param("BROKER_URL", f"amqp://app:{SECRET_TEXT}@mq//", id="unsupported-broker"),
]


@pytest.mark.parametrize(("variable", "value"), BAD_SETTINGS)
def test_a_bad_value_is_named_never_quoted(
    variable: str, value: str, environment: dict[str, str], tmp_path: Path
) -> None:
    environment[variable] = value
    done = command("stats", env=environment, cwd=tmp_path)
    assert_one_error(done, 2, variable, never=(SECRET_TEXT,))


NEEDS_API_KEY = [
    ("submit", "--model", "m", "--prompt", "p"),
    ("reconcile",),
    ("reconcile", "--dry-run"),
    ("webhooks", "register", "--url", "https://hooks.example/webhooks/rivya"),
    ("webhooks", "status"),
    ("serve",),
]


@pytest.mark.parametrize("args", NEEDS_API_KEY, ids=" ".join)
def test_a_missing_api_key_is_a_configuration_error(
    args: tuple[str, ...], environment: dict[str, str], tmp_path: Path
) -> None:
    environment["RIVYA_API_KEY"] = ""
    # Said before anything is tried: the database here is down, and that is not the error.
    environment["DATABASE_URL"] = f"postgresql://app@127.0.0.1:{free_port()}/app"
    done = command(*args, env=environment, cwd=tmp_path)
    assert_one_error(done, 2, "RIVYA_API_KEY")


def test_doctor_names_a_missing_api_key_as_configuration(
    environment: dict[str, str], tmp_path: Path
) -> None:
    environment["RIVYA_API_KEY"] = ""
    report = doctor(environment, tmp_path, 2)
    assert "FAIL rivya key: RIVYA_API_KEY is not set" in report


@pytest.mark.parametrize("role", ["worker", "outbound", "beat"])
def test_celery_roles_refuse_to_start_without_an_api_key(
    role: str, environment: dict[str, str], tmp_path: Path
) -> None:
    environment["RIVYA_API_KEY"] = ""
    environment["PATH"] = f"{BIN}:{environment['PATH']}"
    line = procfile_roles(ROOT / "Procfile")[role]
    done = run(["bash", "-c", line], environment, tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    # The roles log as JSON (LOG_FORMAT): one error record, naming the variable and the next
    # step; every other line is a record too.
    records = [json.loads(line) for line in output.splitlines()]
    (error,) = [r for r in records if r["level"] == "error"]
    assert "RIVYA_API_KEY" in error["event"]
    assert error["next"]
    assert "Traceback" not in output
    # Never got as far as starting a node (outbound names its own).
    assert "celery@" not in output
    assert "outbound@" not in output


# --- doctor: weak secrets ------------------------------------------------------------------

WEAK = [
    pytest.param(base64.b64encode(b"A" * 32).decode(), "repeats most of its bytes", id="repeated"),
    pytest.param(
        base64.b64encode(b"The quick brown fox jumps over 13 lazy dogs!").decode(),
        "is printable text, not random bytes",
        id="typed",
    ),
]


@pytest.mark.parametrize(("encoded", "reason"), WEAK)
def test_doctor_flags_a_weak_webhook_secret(
    encoded: str, reason: str, environment: dict[str, str], tmp_path: Path
) -> None:
    environment["RIVYA_WEBHOOK_SECRETS"] = f"{random_secret()},whsec_{encoded}"
    report = doctor(environment, tmp_path, 2, never=(encoded,))
    assert f"FAIL webhook secret #2: RIVYA_WEBHOOK_SECRETS secret #2 {reason}" in report
    assert "ok   webhook secret #1: looks random" in report


def test_doctor_flags_a_short_results_token(environment: dict[str, str], tmp_path: Path) -> None:
    environment["RESULTS_API_TOKEN"] = "hunter2"
    done = command("doctor", "--json", env=environment, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    checks = {c["check"]: c for c in json.loads(done.stdout)["checks"]}
    assert checks["results API token"]["ok"] is False
    assert checks["results API token"]["detail"] == "RESULTS_API_TOKEN has 7 characters"
    assert "hunter2" not in done.stdout + done.stderr


def test_doctor_flags_a_short_token_among_several(
    environment: dict[str, str], tmp_path: Path
) -> None:
    environment["RESULTS_API_TOKENS"] = "a-long-enough-random-token,hunter2"
    done = command("doctor", "--json", env=environment, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    checks = {c["check"]: c for c in json.loads(done.stdout)["checks"]}
    assert checks["results API token #1"]["ok"] is True
    assert checks["results API token #2"]["ok"] is False
    assert (
        checks["results API token #2"]["detail"] == "RESULTS_API_TOKENS token #2 has 7 characters"
    )
    assert "hunter2" not in done.stdout + done.stderr


# --- the database: down, missing, not migrated ---------------------------------------------

DATABASE_COMMANDS = [("db", "upgrade"), ("db", "check"), ("events", "list"), ("stats",)]


@pytest.mark.parametrize("args", DATABASE_COMMANDS, ids=" ".join)
def test_a_database_server_that_is_down_is_named_as_such(
    args: tuple[str, ...], environment: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()  # nothing listens there
    environment["DATABASE_URL"] = f"postgresql://app:{PASSWORD}@127.0.0.1:{port}/app"
    done = command(*args, env=environment, cwd=tmp_path)
    error = assert_one_error(
        done, 1, f"no database server answers at 127.0.0.1:{port}", (PASSWORD,)
    )
    assert "Connection refused" in error  # the driver's own first line
    assert "next: start the database server" in done.stderr


@pytest.mark.postgres
@pytest.mark.parametrize("args", DATABASE_COMMANDS, ids=" ".join)
def test_a_missing_database_is_told_apart_from_a_server_that_is_down(
    args: tuple[str, ...], postgres_url: str, environment: dict[str, str], tmp_path: Path
) -> None:
    name = f"rivyahooks_missing_{uuid.uuid4().hex[:8]}"
    url = make_url(postgres_url).set(drivername="postgres", database=name, password=PASSWORD)
    environment["DATABASE_URL"] = url.render_as_string(hide_password=False)
    done = command(*args, env=environment, cwd=tmp_path)
    error = assert_one_error(done, 1, f"has no database '{name}'", (PASSWORD,))
    assert "does not exist" in error  # PostgreSQL's own first line
    assert f"next: create it (createdb {name})" in done.stderr


def test_doctor_tells_the_database_problem_apart(
    environment: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    environment["DATABASE_URL"] = f"postgresql://app:{PASSWORD}@127.0.0.1:{port}/app"
    report = doctor(environment, tmp_path, 1, never=(PASSWORD,))
    assert f"FAIL database: no database server answers at 127.0.0.1:{port}" in report
    assert "next: start the database server" in report


def test_an_unmigrated_database_says_to_upgrade(
    environment: dict[str, str], tmp_path: Path
) -> None:
    environment["DATABASE_URL"] = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    done = command("stats", env=environment, cwd=tmp_path)
    assert_one_error(done, 1, "has no tables yet")
    assert "next: run `rivya-hooks db upgrade`" in done.stderr


# --- --version and events list --limit --------------------------------------------------------


def test_version(environment: dict[str, str], tmp_path: Path) -> None:
    done = command("--version", env=environment, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (
        done.stdout.strip() == f"rivya-hooks, version {importlib.metadata.version('rivya-hooks')}"
    )


@pytest.mark.parametrize("limit", ["-1", "0", "many"])
def test_events_list_refuses_a_bad_limit_before_any_query(
    limit: str, environment: dict[str, str], tmp_path: Path
) -> None:
    done = command("events", "list", "--limit", limit, env=environment, cwd=tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "Invalid value for '--limit'" in done.stderr
    assert "Traceback" not in output
    assert "SQL" not in output


def test_events_list_says_when_it_was_cut_off(
    environment: dict[str, str], sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    with sessions.begin() as session:
        for number in range(3):
            insert_event(session, event_id=f"evt_{number}", body=b"{}", source=EventSource.WEBHOOK)

    cut = command("events", "list", "--limit", "2", env=environment, cwd=tmp_path)
    assert cut.returncode == 0, cut.stderr
    assert cut.stdout.count("evt_") == 2
    assert "showing the newest 2; more events match" in cut.stdout

    whole = command("events", "list", "--limit", "3", env=environment, cwd=tmp_path)
    assert whole.stdout.count("evt_") == 3
    assert "more events match" not in whole.stdout + whole.stderr

    as_json = command("events", "list", "--limit", "2", "--json", env=environment, cwd=tmp_path)
    assert len(json.loads(as_json.stdout)) == 2  # stdout stays one JSON document
    assert "more events match" in as_json.stderr
