"""Debian's nginx as a process of the test, running deploy/nginx/nginx.conf.

The configuration is the one compose mounts into its proxy container, rendered for a test:
its upstream points at the test's gunicorn, its two listeners at free loopback ports, and
its pid and temporary files at the test's directory. Nothing else changes, and each
replacement must match, so a reshaped configuration fails here instead of going untested.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support import services
from tests.support.eventually import eventually
from tests.support.processes import ROOT, free_port, stop

CONFIG = ROOT / "deploy" / "nginx" / "nginx.conf"


@dataclass(frozen=True)
class Proxy:
    public_url: str
    internal_url: str


def render(upstream: str, public_port: int, internal_port: int, workdir: Path) -> str:
    """Return deploy/nginx/nginx.conf pointed at the test's upstream, ports and directory."""
    text = CONFIG.read_text()
    exact = {
        "server web:8000;": f"server {upstream};",
        "listen 8080 default_server;": f"listen 127.0.0.1:{public_port} default_server;",
        "listen 8081 default_server;": f"listen 127.0.0.1:{internal_port} default_server;",
    }
    for old, new in exact.items():
        assert text.count(old) == 1, f"{CONFIG} no longer has exactly one '{old}'"
        text = text.replace(old, new)
    # The pid file and every temporary path live in /tmp in the container.
    assert text.count(" /tmp/") >= 6, f"{CONFIG}: pid and temp paths moved out of /tmp"
    return text.replace(" /tmp/", f" {workdir}/")


def nginx_binary() -> str:
    """Return Debian's nginx; skip (fail in CI) when it is not installed."""
    return services.installed(
        "nginx",
        "apt-get install nginx-light",
        ".ci/containers installs it in CI",
        also_in="/usr/sbin",
    )


@contextmanager
def nginx_proxy(upstream: str, workdir: Path) -> Iterator[Proxy]:
    """Run nginx with the rendered configuration in front of `upstream` (host:port)."""
    binary = nginx_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    public_port, internal_port = free_port(), free_port()
    config = workdir / "nginx.conf"
    config.write_text(render(upstream, public_port, internal_port, workdir))
    log = open(workdir / "nginx.log", "wb")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        # -e: the compiled-in error log path may not be writable; the config logs to stderr.
        [binary, "-e", "stderr", "-p", str(workdir), "-c", str(config), "-g", "daemon off;"],
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    try:
        public = f"http://127.0.0.1:{public_port}"
        internal = f"http://127.0.0.1:{internal_port}"

        def listening() -> bool:
            if process.poll() is not None:
                raise RuntimeError(
                    f"nginx exited with {process.returncode}: "
                    f"{(workdir / 'nginx.log').read_text(errors='replace')[-2000:]}"
                )
            return services.reachable(public) and services.reachable(internal)

        eventually(listening, 15, "nginx listening")
        yield Proxy(public, internal)
    finally:
        stop(process)
        log.close()
