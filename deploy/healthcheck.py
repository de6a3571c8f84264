"""The image's health check, for whichever role the container runs.

web: GET /healthz on its port answers 200. worker and outbound: the Celery node answers a
ping over the broker (so a worker that lost its broker turns unhealthy). Other roles: their
process is PID 1, so the container stops (and its restart policy acts) when it dies; nothing
more to check.
Exit 0 healthy, 1 unhealthy (what Docker and podman expect).
"""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

TIMEOUT_SECONDS = 5


def main() -> int:
    command = Path("/proc/1/cmdline").read_bytes().split(b"\0")
    words = [Path(w.decode(errors="replace")).name for w in command if w]
    if "gunicorn" in words:
        url = f"http://127.0.0.1:{os.environ.get('PORT', '8000')}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
                return 0 if response.status == 200 else 1
        except OSError as exc:
            print(f"web: {url} did not answer: {exc}", file=sys.stderr)
            return 1
    if "celery" in words and "worker" in words:
        ping = subprocess.run(
            [
                "celery",
                "-A",
                "tasks.worker",
                "inspect",
                "ping",
                "--timeout",
                str(TIMEOUT_SECONDS),
                "--destination",
                node_name(words),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if ping.returncode != 0:
            print(
                f"worker: no answer to a Celery ping: {ping.stdout}{ping.stderr}", file=sys.stderr
            )
        return 0 if ping.returncode == 0 else 1
    return 0


def node_name(words: list[str]) -> str:
    """Return the node a Celery worker answers pings as: its `-n` (outbound's) or the default."""
    name = "celery@%h"
    for flag, value in itertools.pairwise(words):
        if flag in {"-n", "--hostname"}:
            name = value
    for word in words:
        if word.startswith("--hostname="):
            name = word.partition("=")[2]
    # The one expansion the Procfile's lines use (Celery's own: the full host name).
    return name.replace("%h", socket.gethostname())


if __name__ == "__main__":
    sys.exit(main())
