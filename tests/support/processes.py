"""Start the service's real processes (gunicorn, the relay, a Celery worker) for a test.

Each runs under the command's own supervisor (rivyahooks.supervisor), in a process group of
its own, stopped with everything it started when the test is done.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from rivyahooks.supervisor import STOP_TIMEOUT_SECONDS, Child, Spec, Supervisor, stop_group
from rivyahooks.supervisor import group_members as group_members
from rivyahooks_foundation.settings import Settings
from tests.support.eventually import eventually

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def own_redis_database(redis_url: str, db: int) -> str:
    """Return an emptied Redis database of one test's own, on the server of `redis_url`.

    The suite's shared database is flushed by every test that asks for it, so a test whose
    real worker consumes a queue for many seconds would lose its messages to a test running
    at the same time (and its worker would consume theirs).
    """
    import redis

    url = redis_url.rsplit("/", 1)[0] + f"/{db}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    return url


def processes_in(directory: Path) -> list[int]:
    """Return the processes whose working directory is `directory` (a run and its roles)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if Path(os.readlink(entry / "cwd")) == directory:
                    found.append(int(entry.name))
            except OSError:
                continue  # gone meanwhile, or not ours to read
    return found


def child_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}
    env.update(settings.to_env())
    env.update(extra)
    return env


def wait_for_http(url: str, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    def serving() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before serving {url}")
        try:
            httpx.get(url, timeout=1)
        except httpx.TransportError:
            return False
        return True

    eventually(serving, timeout, interval=0.1, what=f"{url} to answer")


def stop(
    process: subprocess.Popen[bytes],
    sig: int = signal.SIGTERM,
    timeout: float = STOP_TIMEOUT_SECONDS,
) -> None:
    """Stop a process started in a session of its own, and everything of its process group."""
    stop_group(process, sig, timeout)


@contextmanager
def supervised(
    name: str,
    command: list[str],
    env: dict[str, str],
    log: Path | None,
    stop_timeout: float = STOP_TIMEOUT_SECONDS,
) -> Iterator[Child]:
    """Run one process from the checkout for the block, in a process group of its own."""
    supervisor = Supervisor(stop_timeout)
    child = supervisor.start(Spec(name, command, env=env, cwd=ROOT, log=log))
    try:
        yield child
    finally:
        supervisor.stop_all()


@contextmanager
def gunicorn(
    settings: Settings,
    workers: int = 2,
    threads: int = 4,
    log: Path | None = None,
    **extra_env: str,
) -> Iterator[str]:
    """Serve the receiver with the Procfile's web command; yield its base URL."""
    port = free_port()
    env = child_env(
        settings,
        HOST="127.0.0.1",
        PORT=str(port),
        WEB_CONCURRENCY=str(workers),
        WEB_THREADS=str(threads),
        **extra_env,
    )
    command = [
        str(BIN / "gunicorn"),
        "-c",
        "python:rivyahooks.gunicorn_conf",
        "receiver:create_app()",
    ]
    with supervised("web", command, env, log) as web:
        url = f"http://127.0.0.1:{port}"
        wait_for_http(url + "/healthz", web.process)
        yield url


@contextmanager
def celery_worker(
    settings: Settings,
    concurrency: int = 2,
    log: Path | None = None,
    beat: bool = False,
    **extra_env: str,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a real Celery worker (prefork) on the settings' broker; yield its process."""
    env = child_env(settings, **extra_env)
    command = [
        str(BIN / "celery"),
        "--quiet",  # no banner: every line is a log line (Procfile does the same)
        "-A",
        "tasks.worker",
        "worker",
        "--loglevel",
        "INFO",
        "--concurrency",
        str(concurrency),
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    if beat:
        # Beat's schedule file goes beside the log, or in a directory of its own.
        schedule_dir = log.parent if log else Path(tempfile.mkdtemp(prefix="beat-"))
        command += ["--beat", "--schedule", str(schedule_dir / "beat")]
    with supervised("worker", command, env, log, stop_timeout=30) as worker:
        yield worker.process


class Supervised:
    """A process restarted whenever it exits, as a platform restarts a crashed role."""

    def __init__(
        self, name: str, command: list[str], env: dict[str, str], log: Path | None
    ) -> None:
        self._supervisor = Supervisor()
        spec = Spec(name, command, env=env, cwd=ROOT, log=log, restart=True)
        self._child = self._supervisor.start(spec)
        self._stopping = threading.Event()
        self._watcher = threading.Thread(target=self._watch, daemon=True)
        self._watcher.start()

    @property
    def process(self) -> subprocess.Popen[bytes]:
        return self._child.process

    @property
    def starts(self) -> int:
        return self._child.starts

    def _watch(self) -> None:
        while not self._stopping.is_set():
            self._supervisor.watch()
            self._stopping.wait(0.1)

    def stop(self) -> None:
        self._stopping.set()
        # Not before the watcher is done: a restart under way would outlive the stop.
        self._watcher.join()
        self._supervisor.stop_all()


@contextmanager
def relay(settings: Settings, log: Path | None = None) -> Iterator[Supervised]:
    """Run the relay role (`rivya-hooks relay`), restarted if it dies; yield it."""
    role = Supervised("relay", [str(BIN / "rivya-hooks"), "relay"], child_env(settings), log)
    try:
        yield role
    finally:
        role.stop()


@contextmanager
def celery_beat(settings: Settings, schedule: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run the Procfile's beat (a process of its own, unlike `worker --beat`)."""
    command = [
        str(BIN / "celery"),
        "--quiet",
        "-A",
        "tasks.worker",
        "beat",
        "--schedule",
        str(schedule),
    ]
    with supervised("beat", command, child_env(settings), log) as beat:
        yield beat.process
