"""Where result files are kept, behind a small interface selected by STORAGE_URL.

A file reaches its final name only by an atomic rename of a complete, verified file, so a
final name never holds a partial file. Keys include the task id, the output index and the
sha256, so two workers that stored the same output wrote the same bytes to the same key.
"""

from __future__ import annotations

import glob
import os
import re
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from rivyahooks.settings import Settings, SettingsError

PARTIAL_DIR = ".partial"
_SAFE = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")


def output_key(task_id: str, index: int, sha256: str) -> str:
    """Return the storage key of one output; unsafe task ids are replaced by a hash."""
    folder = task_id if _SAFE.match(task_id) and not task_id.startswith(".") else None
    if folder is None:
        import hashlib

        folder = "id-" + hashlib.sha256(task_id.encode()).hexdigest()[:32]
    return f"{folder}/{index:04d}-{sha256}"


@dataclass
class Staged:
    """A file being written; `path` is where the writer puts the bytes."""

    path: Path
    committed_key: str | None = None


class Storage(Protocol):
    """What processing needs of a place to keep results; FileStorage is the one we have."""

    def staging(self, label: str) -> AbstractContextManager[Staged]: ...
    def commit(self, staged: Staged, key: str) -> None: ...
    def exists(self, key: str) -> bool: ...
    def size(self, key: str) -> int: ...
    def path(self, key: str) -> Path: ...
    def remove_stale_partials(self, max_age_seconds: float) -> int: ...
    def delete(self, key: str) -> None: ...


class FileStorage:
    """Files under a root directory (file:// URLs)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.partials = root / PARTIAL_DIR
        self.partials.mkdir(parents=True, exist_ok=True)
        self._owner = f"{_host()}.{os.getpid()}"

    @contextmanager
    def staging(self, label: str) -> Iterator[Staged]:
        """Yield a partial file to write; it is removed unless committed."""
        safe_label = re.sub(r"[^A-Za-z0-9_.-]", "_", label)[:100]
        # A worker killed while writing this same output left its partial file behind;
        # whoever stages the output next clears it rather than waiting for the sweeper.
        self._remove_dead_partials(safe_label)
        # The owner in the name lets a later run recognise files left by a dead process.
        path = self.partials / f"{safe_label}.{self._owner}.{uuid.uuid4().hex}.part"
        staged = Staged(path)
        try:
            yield staged
        finally:
            if staged.committed_key is None:
                path.unlink(missing_ok=True)

    def commit(self, staged: Staged, key: str) -> None:
        """Move a complete file to its key: fsync, then an atomic rename."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(staged.path, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(staged.path, target)
        staged.committed_key = key

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def size(self, key: str) -> int:
        return self.path(key).stat().st_size

    def path(self, key: str) -> Path:
        target = (self.root / key).resolve()
        if self.root.resolve() not in target.parents:
            raise ValueError("storage key escapes the storage root")
        return target

    def delete(self, key: str) -> None:
        """Remove a stored file (retention); a missing one is already what was wanted."""
        self.path(key).unlink(missing_ok=True)

    def _remove_dead_partials(self, safe_label: str) -> None:
        host = _host()
        for path in self.partials.glob(f"{glob.escape(safe_label)}.*.part"):
            if _dead_local_writer(path.name, host):
                path.unlink(missing_ok=True)

    def remove_stale_partials(self, max_age_seconds: float) -> int:
        """Delete partial files of dead writers: older than the age, or of a dead local pid."""
        removed = 0
        now = time.time()
        host = _host()
        for path in self.partials.glob("*.part"):
            try:
                age = now - path.stat().st_mtime
            except FileNotFoundError:
                continue
            if age > max_age_seconds or _dead_local_writer(path.name, host):
                path.unlink(missing_ok=True)
                removed += 1
        return removed


def _host() -> str:
    # Dots would make partial names ambiguous to parse.
    return socket.gethostname().replace(".", "-")


def _dead_local_writer(name: str, host: str) -> bool:
    # name: <label>.<host>.<pid>.<uuid>.part; the label may itself contain dots.
    parts = name.split(".")
    if len(parts) < 5 or parts[-4] != host or not parts[-3].isdigit():
        return False
    try:
        os.kill(int(parts[-3]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def open_storage(settings: Settings) -> Storage:
    """Return the storage STORAGE_URL names."""
    if settings.storage_url.startswith("file://"):
        return FileStorage(settings.storage_root())
    raise SettingsError("STORAGE_URL: only file:// storage is supported")
