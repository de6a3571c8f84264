"""A throwaway redis-server of the test's own, to stop and start while the shared one runs."""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support import services
from tests.support.eventually import eventually


class RedisServer:
    """A redis-server on a loopback port, without persistence, that can be killed and revived."""

    def __init__(self, port: int, workdir: Path) -> None:
        self.port = port
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        process = self.process

        def listening() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {process.returncode}")
            return services.reachable(self.url)

        eventually(listening, 10, what=f"redis-server to listen on {self.port}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        # Wait until the port refuses, so the next request sees the outage.
        eventually(lambda: not services.reachable(self.url), 10, what="the port to refuse")


@contextmanager
def redis_server(workdir: Path) -> Iterator[RedisServer]:
    """Yield a started throwaway Redis; skip (fail in CI) when redis-server is not installed."""
    if shutil.which("redis-server") is None:
        services.absent(
            "redis-server is not installed; CI must run the broker fault tests",
            "redis-server is not installed",
        )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = RedisServer(port, workdir)
    server.start()
    try:
        yield server
    finally:
        server.kill()
