"""`rivya-hooks serve` as an operator runs it: one process tree, real roles, real signals.

Each test starts the installed command in a directory of its own and, at the end, checks
that no process is left whose working directory is that one (every role inherits it).
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from models.db import make_engine
from rivyahooks.roles import SERVICE_ROLES
from rivyahooks_simulator.config import SimConfig
from rivyahooks_simulator.server import Simulator
from tests.production_install import OUTPUT_BYTES, OUTPUTS, stored
from tests.support.eventually import eventually
from tests.support.processes import BIN, ROOT, free_port, processes_in

pytestmark = pytest.mark.slow

STOP_SECONDS = 30
WORKER_MARKER = "tasks.worker worker --loglevel"


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


class Served:
    """A running `rivya-hooks serve`: its process, its directory, its output so far."""

    def __init__(self, app: Path, env: dict[str, str], args: list[str]) -> None:
        self.app = app
        self.out = app / "serve.out"
        self.err = app / "serve.err"
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.process = subprocess.Popen(
                args, cwd=app, env=env, stdout=out, stderr=err, start_new_session=True
            )

    def output(self) -> str:
        return self.out.read_text(errors="replace") + self.err.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, within: float = STOP_SECONDS) -> int:
        """Signal serve alone (as docker or systemd does); return its exit status."""
        self.process.send_signal(sig)
        try:
            return self.process.wait(within)
        except subprocess.TimeoutExpired:
            pytest.fail(f"serve did not stop within {within} s:\n{self.output()[-3000:]}")

    def cleanup(self) -> list[str]:
        """Kill whatever is left (a failed test); return the command lines of what was."""
        left = [command_line(pid) for pid in processes_in(self.app)]
        for pid in processes_in(self.app):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(os.getpgid(pid), signal.SIGKILL)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        return left


def base_env(**extra: str) -> dict[str, str]:
    """Only what an operator would set, plus ports free on a shared machine."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "HOST": "127.0.0.1",
        "PORT": str(free_port()),
        "WEB_CONCURRENCY": "1",
        "WORKER_CONCURRENCY": "2",
        "WORKER_METRICS_PORT": "0",
        "OUTBOUND_METRICS_PORT": "0",
        "BEAT_METRICS_PORT": "0",
        "RELAY_METRICS_PORT": "0",
    }
    env.update(extra)
    return env


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    config = SimConfig(
        queued_seconds=0.1,
        processing_seconds=0.2,
        failure_ratio=0.0,
        outputs=OUTPUTS,
        output_bytes=OUTPUT_BYTES,
    )
    with Simulator(config=config).start() as sim:
        yield sim


@pytest.fixture
def app(tmp_path: Path) -> Path:
    directory = tmp_path / "app"
    directory.mkdir()
    return directory


@pytest.fixture
def served_list(app: Path) -> Iterator[list[Served]]:
    started: list[Served] = []
    yield started
    for served in started:
        left = served.cleanup()
        assert left == [], f"left running: {left}"


def rivya_env(sim: Simulator, secret: str) -> dict[str, str]:
    return base_env(
        RIVYA_API_KEY=sim.api_key,
        RIVYA_API_BASE=sim.url,
        RIVYA_WEBHOOK_SECRETS=secret,
        RIVYA_DOWNLOAD_ALLOWED_HOSTS="127.0.0.1",
    )


def wait_healthy(served: Served, port: str) -> None:
    def answering() -> bool:
        assert served.process.poll() is None, served.output()[-3000:]
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    eventually(answering, 60, "the web role answering /healthz", interval=0.2)


def role_leader(served: Served, marker: str) -> int:
    """Return the pid of the role process whose command line holds `marker`."""
    for pid in processes_in(served.app):
        try:
            if marker in command_line(pid) and os.getpgid(pid) == pid:
                return pid
        except ProcessLookupError:
            continue
    raise AssertionError(f"no role process with {marker!r}:\n{served.output()[-2000:]}")


def test_a_killed_role_is_restarted_and_sigterm_stops_everything(
    simulator: Simulator, app: Path, served_list: list[Served]
) -> None:
    secret = new_secret()
    env = rivya_env(simulator, secret)
    served = Served(app, env, [str(BIN / "rivya-hooks"), "serve"])
    served_list.append(served)
    wait_healthy(served, env["PORT"])
    simulator.register_endpoint(f"http://127.0.0.1:{env['PORT']}/webhooks/rivya", secret=secret)
    engine = make_engine(f"sqlite:///{app / 'var' / 'rivya-hooks.sqlite3'}")
    results = app / "var" / "results"
    try:
        (first,) = simulator.scenario(1, outcome="succeeded")
        eventually(lambda: stored(engine, results, first), 60, "the first generation stored")

        # The worker's main process dies without a chance to clean up. (The outbound role is
        # a Celery worker too: its line goes on with -Q.)
        worker = role_leader(served, WORKER_MARKER)
        os.kill(worker, signal.SIGKILL)
        eventually(
            lambda: "worker restarted (start #2)" in served.output(), 30, "the worker restarted"
        )
        assert role_leader(served, WORKER_MARKER) != worker
        (second,) = simulator.scenario(1, outcome="succeeded")
        eventually(lambda: stored(engine, results, second), 60, "the second generation stored")
    finally:
        engine.dispose()

    began = time.monotonic()
    status = served.stop(signal.SIGTERM)
    output = served.output()
    assert status == 0, output[-3000:]
    assert time.monotonic() - began < STOP_SECONDS
    assert processes_in(app) == []
    # Web stopped first, beat last; every role's lines carry its name, padded to the longest.
    width = len(max(SERVICE_ROLES, key=len))
    order = [output.index(f"{'serve'.ljust(width)} | stopping {role}") for role in SERVICE_ROLES]
    assert order == sorted(order)
    assert f"{'release'.ljust(width)} | database at revision head" in output
    assert "worker exited with -9; restarting it in 0 s" in output
    for role in SERVICE_ROLES:
        assert f"\n{role.ljust(width)} | " in output


def test_a_role_that_keeps_dying_stops_the_whole_tree(
    simulator: Simulator, app: Path, served_list: list[Served]
) -> None:
    # celery refuses this concurrency at once, every time it is started.
    env = rivya_env(simulator, new_secret())
    env["WORKER_CONCURRENCY"] = "many"
    served = Served(app, env, [str(BIN / "rivya-hooks"), "serve"])
    served_list.append(served)
    try:
        status = served.process.wait(90)
    except subprocess.TimeoutExpired:
        pytest.fail(f"serve still running:\n{served.output()[-3000:]}")
    output = served.output()
    assert status == 1, output[-3000:]
    assert "error: worker keeps dying" in served.err.read_text()
    assert "5 exits within 60 s" in output
    assert "next: see worker's lines above" in served.err.read_text()
    assert "worker restarted (start #5)" in output
    assert processes_in(app) == []


STAND_IN = """
import sys
from pathlib import Path
from rivyahooks.serve import ServeOptions, serve
commands = {"web": "trap '' TERM; sleep 300 & wait", "relay": "exec sleep 300"}
options = ServeOptions(
    data_dir=Path("var"), roles=("web", "relay"), stop_timeout=float(sys.argv[1]),
    migrate=False, commands=commands,
)
sys.exit(serve(options))
"""


def stand_in(app: Path, stop_timeout: float, served_list: list[Served]) -> Served:
    """serve itself, with a web role that ignores SIGTERM (and a child that does too)."""
    env = base_env(RIVYA_WEBHOOK_SECRETS=new_secret(), PYTHONPATH=str(ROOT))
    served = Served(app, env, [sys.executable, "-c", STAND_IN, str(stop_timeout)])
    served_list.append(served)
    eventually(lambda: len(processes_in(app)) >= 4, 20, "serve and its stand-in roles")
    return served


def test_a_role_that_ignores_sigterm_is_killed_at_the_timeout(
    app: Path, served_list: list[Served]
) -> None:
    served = stand_in(app, 2, served_list)
    began = time.monotonic()
    status = served.stop(signal.SIGTERM)
    output = served.output()
    assert status == 0, output
    assert time.monotonic() - began < 2 + 10
    assert "web still running at the timeout: SIGKILL" in output
    assert processes_in(app) == []


def test_a_second_signal_stops_at_once(app: Path, served_list: list[Served]) -> None:
    served = stand_in(app, 60, served_list)
    served.process.send_signal(signal.SIGINT)
    time.sleep(1)
    began = time.monotonic()
    status = served.stop(signal.SIGTERM, within=10)
    output = served.output()
    assert status == 1, output
    assert time.monotonic() - began < 10
    assert "SIGTERM again: killing every role now" in output
    assert "error: stopped at once on a second signal" in served.err.read_text()
    assert processes_in(app) == []


def test_serve_refuses_an_unknown_role_before_starting_anything(app: Path) -> None:
    done = subprocess.run(
        [str(BIN / "rivya-hooks"), "serve", "--roles", "web,mailer"],
        cwd=app,
        env=base_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "Invalid value for --roles" in done.stderr
    assert "mailer" in done.stderr
    assert not (app / "var").exists()
