"""Start the service's real processes (gunicorn, the relay, a Celery worker) for a test."""

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


def group_members(pgid: int) -> list[int]:
    """Return the live processes of a process group (zombies excluded), read from /proc.

    A child orphaned by its shell keeps the group, so an empty group after a role stopped
    means nothing of that role survived.
    """
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        # The command name may hold spaces and parentheses; the fields after the last ')'
        # are fixed: state, ppid, pgrp, ...
        state, _ppid, pgrp = stat.rsplit(")", 1)[1].split()[:3]
        if int(pgrp) == pgid and state != "Z":
            members.append(int(entry.name))
    return members


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 15) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


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
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen(
        [str(BIN / "gunicorn"), "-c", "deploy/gunicorn.conf.py", "receiver:create_app()"],
        cwd=ROOT,
        env=env,
        stdout=out,
        stderr=out,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_http(url + "/healthz", process)
        yield url
    finally:
        stop(process)
        if log:
            out.close()  # type: ignore[union-attr]


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
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=out, stderr=out, start_new_session=True
    )
    try:
        yield process
    finally:
        stop(process, timeout=30)
        if log:
            out.close()  # type: ignore[union-attr]


class Supervised:
    """A process restarted whenever it exits, as a platform restarts a crashed role."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path | None) -> None:
        self._command = command
        self._env = env
        self._out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
        self._stopping = threading.Event()
        self.starts = 0
        self.process = self._start()
        self._watcher = threading.Thread(target=self._watch, daemon=True)
        self._watcher.start()

    def _start(self) -> subprocess.Popen[bytes]:
        self.starts += 1
        return subprocess.Popen(
            self._command,
            cwd=ROOT,
            env=self._env,
            stdout=self._out,
            stderr=self._out,
            start_new_session=True,
        )

    def _watch(self) -> None:
        while not self._stopping.is_set():
            if self.process.poll() is not None and not self._stopping.is_set():
                self.process = self._start()
            self._stopping.wait(0.1)

    def stop(self) -> None:
        self._stopping.set()
        self._watcher.join(5)
        stop(self.process)
        if self._out is not subprocess.DEVNULL:
            self._out.close()  # type: ignore[union-attr]


@contextmanager
def relay(settings: Settings, log: Path | None = None) -> Iterator[Supervised]:
    """Run the relay role (`rivya-hooks relay`), restarted if it dies; yield it."""
    supervised = Supervised([str(BIN / "rivya-hooks"), "relay"], child_env(settings), log)
    try:
        yield supervised
    finally:
        supervised.stop()


@contextmanager
def celery_beat(settings: Settings, schedule: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run the Procfile's beat (a process of its own, unlike `worker --beat`)."""
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [
                str(BIN / "celery"),
                "--quiet",
                "-A",
                "tasks.worker",
                "beat",
                "--schedule",
                str(schedule),
            ],
            cwd=ROOT,
            env=child_env(settings),
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            stop(process)
