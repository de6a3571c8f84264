"""Each forking role's own directory of metric files (prometheus-client's multiprocess mode).

gunicorn's workers and Celery's prefork children are separate processes, so each writes its
samples to memory-mapped files in PROMETHEUS_MULTIPROC_DIR and the process that serves
/metrics adds them up. prometheus-client picks that mode when it is first imported, so the
role's entry point calls `use_own_metrics_directory` before anything imports it.

Every start gets a fresh directory, `<base>/rivya-hooks-metrics-<uid>/<role>-<pid>`: files
of an earlier run (whose counters would otherwise be added to this run's) or of another role
on the same host never mix in. Directories of processes that no longer exist are removed at
start, the process's own one when it exits.

The base is the shared temporary directory by default, so the service's own directory in it
is made private (0700) and checked to be ours and private before use: another local user
who made it first could otherwise read the service's figures or plant samples in them.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import stat
import sys
import tempfile
from pathlib import Path

ENV = "PROMETHEUS_MULTIPROC_DIR"
_current: Path | None = None


def use_own_metrics_directory(role: str, base: str = "") -> Path:
    """Make this start's empty metrics directory and point prometheus-client at it.

    Idempotent within a process (gunicorn re-reads its config file on HUP). Raises
    RuntimeError if prometheus-client was imported first: its mode is already fixed.
    """
    global _current
    if _current is not None:
        return _current
    if "prometheus_client.values" in sys.modules:
        raise RuntimeError(
            "prometheus_client was imported before the metrics directory was chosen; "
            "call use_own_metrics_directory() first in the role's entry point"
        )
    root = private_directory(
        Path(base or tempfile.gettempdir()) / f"rivya-hooks-metrics-{os.getuid()}"
    )
    _remove_dead(root)
    path = root / f"{role}-{os.getpid()}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(mode=0o700)
    os.environ[ENV] = str(path)
    atexit.register(_remove_own, path, os.getpid())
    _current = path
    return path


def private_directory(path: Path) -> Path:
    """Make `path` (mode 0700) or check an existing one: ours, a real directory, private.

    Raises RuntimeError naming the path and what to do when it is not.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    status = path.lstat()  # not stat(): a symlink planted there is not our directory
    if not stat.S_ISDIR(status.st_mode) or status.st_uid != os.getuid():
        raise RuntimeError(
            f"{path} exists but is not a directory of this user (uid {os.getuid()}): "
            "remove it, or set METRICS_DIR to a directory of the service's own"
        )
    if status.st_mode & 0o077:
        raise RuntimeError(
            f"{path} is open to other users (mode {stat.S_IMODE(status.st_mode):o}): "
            f"`chmod 700 {path}`, or set METRICS_DIR to a directory of the service's own"
        )
    return path


def _remove_own(path: Path, owner: int) -> None:
    # Forked children inherit exit handlers: only the process that made it removes it.
    if os.getpid() == owner:
        shutil.rmtree(path, ignore_errors=True)


def _remove_dead(root: Path) -> None:
    for entry in root.iterdir():
        pid = entry.name.rpartition("-")[2]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True
