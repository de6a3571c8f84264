"""A really full disk: a small tmpfs mounted in a private mount namespace, for one child.

`unshare --mount` gives the child its own mount table: the tmpfs is mounted over a directory
only the child sees as a small filesystem, and vanishes with it, so no mount outlives a
test, whatever happens. Mounting needs root (tests run as root here and in CI).
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support import services
from tests.support.processes import ROOT

# Mounts the tmpfs at $2 with size $1, then runs the rest of the arguments on it.
MOUNT_THEN_RUN = 'mount -t tmpfs -o "size=$1" rivyahooks-full "$2" && shift 2 && exec "$@"'


@functools.cache
def _unshare_problem() -> str | None:
    """Return why a private tmpfs cannot be mounted here, or None when it can."""
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root"
    unshare = services.installed("unshare", "Debian package `util-linux`", "CI images have it")
    probe = subprocess.run(
        [
            unshare,
            "--mount",
            "--propagation",
            "private",
            "mount",
            "-t",
            "tmpfs",
            "none",
            tempfile.gettempdir(),
        ],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        return f"unshare cannot mount a tmpfs here: {probe.stderr.strip()}"
    return None


def run_on_full_disk(
    mountpoint: Path, size: str, code: str, *args: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run Python `code` with a tmpfs of `size` (e.g. "1m") mounted over `mountpoint`."""
    problem = _unshare_problem()
    if problem is not None:
        services.absent(f"{problem}; CI runs the tests as root", f"{problem}: test skipped")
    mountpoint.mkdir(parents=True, exist_ok=True)
    command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", MOUNT_THEN_RUN]
    return subprocess.run(
        [*command, "sh", size, str(mountpoint), sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **env},
        timeout=120,
    )
