"""Each forking role's own directory of metric files (prometheus-client's multiprocess mode).

gunicorn's workers and Celery's prefork children are separate processes, so each writes its
samples to memory-mapped files in PROMETHEUS_MULTIPROC_DIR and the process that serves
/metrics adds them up. prometheus-client picks that mode when it is first imported, so the
role's entry point calls `use_own_metrics_directory` before anything imports it.

Every start gets a fresh directory, `<base>/rivya-hooks-metrics/<role>-<pid>`: files of an
earlier run (whose counters would otherwise be added to this run's) or of another role on
the same host never mix in. Directories of processes that no longer exist are removed at
start, the process's own one when it exits.
"""

from __future__ import annotations

import atexit
import os
import shutil
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
    root = Path(base or tempfile.gettempdir()) / "rivya-hooks-metrics"
    root.mkdir(parents=True, exist_ok=True)
    _remove_dead(root)
    path = root / f"{role}-{os.getpid()}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir()
    os.environ[ENV] = str(path)
    atexit.register(_remove_own, path, os.getpid())
    _current = path
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
