"""File storage: results under a directory (STORAGE_URL=file://DIR).

A file reaches its final name only by an atomic rename of a complete, fsynced file, so a
final name never holds a partial one.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from storage.backend import Staged
from storage.space import StorageFull, full_disk_raises_storage_full
from storage.writers import dead_local_writer, safe_label, writer_id

log = logging.getLogger(__name__)

PARTIAL_DIR = ".partial"


class StagedFile:
    """A partial file being written by one download."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle: BinaryIO = path.open("wb")
        self.committed = False

    def write(self, data: bytes, /) -> int:
        return self.handle.write(data)


def _fsync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _remove_partial(staged: StagedFile) -> None:
    """Close and delete an uncommitted partial file, whatever failed before."""
    # After a failed write (a full disk) the buffer still holds bytes and close() fails
    # again; the partial must go all the same, or the disk stays full.
    with contextlib.suppress(OSError):
        staged.handle.close()
    try:
        staged.path.unlink(missing_ok=True)
    except OSError as exc:
        # The error that brought us here matters more; the sweeper removes the file later.
        log.warning("could not remove partial file %s: %s", staged.path.name, exc)


class FileStorage:
    """Files under a root directory."""

    def __init__(self, root: Path, min_free_bytes: int = 0) -> None:
        self.root = root
        self.partials = root / PARTIAL_DIR
        self.partials.mkdir(parents=True, exist_ok=True)
        self.min_free_bytes = min_free_bytes

    @contextmanager
    def staging(self, label: str) -> Iterator[StagedFile]:
        """Yield a partial file to write; it is removed unless committed."""
        label = safe_label(label)
        # A worker killed while writing this same output left its partial file behind;
        # whoever stages the output next clears it rather than waiting for the sweeper.
        for path in self.partials.glob(f"{glob.escape(label)}.*.part"):
            if dead_local_writer(path.name):
                path.unlink(missing_ok=True)
        # The writer in the name lets a later run recognise files left by a dead process.
        path = self.partials / f"{label}.{writer_id()}.{uuid.uuid4().hex}.part"
        # A full disk surfaces in creating the file (no inode left), a write, the flush or
        # fsync of the commit, or the rename's directory: whichever, the attempt must know
        # it is the disk.
        with full_disk_raises_storage_full():
            staged = StagedFile(path)
        try:
            with full_disk_raises_storage_full():
                yield staged
        finally:
            if not staged.committed:
                _remove_partial(staged)

    def commit(self, staged: Staged, key: str, content_type: str | None) -> None:
        """Move a complete file to its key: fsync, then an atomic rename."""
        assert isinstance(staged, StagedFile)
        target = self._path(key)
        created = not target.parent.is_dir()
        target.parent.mkdir(parents=True, exist_ok=True)
        staged.handle.flush()
        os.fsync(staged.handle.fileno())
        staged.handle.close()
        os.replace(staged.path, target)
        staged.committed = True
        # The rename (and a new task folder) lives in the directories, not in the file: until
        # they are fsynced too, a crash can lose the name while the output row, committed
        # next, says the file is there.
        _fsync_directory(target.parent)
        if created:
            _fsync_directory(target.parent.parent)

    def ensure_room(self, size: int) -> None:
        """Raise StorageFull unless `size` bytes fit in staging and MIN_FREE bytes stay free."""
        # Checked against the staging directory's filesystem: the file is written there, and
        # the rename to its key stays on it. Not a reservation: downloads that check at the
        # same moment may together take more, which the margin is there to absorb.
        free = shutil.disk_usage(self.partials).free
        if free < size + self.min_free_bytes:
            raise StorageFull(
                f"the result disk has {free} bytes free: too few for {size} bytes while "
                f"keeping STORAGE_MIN_FREE_BYTES ({self.min_free_bytes}) free"
            )

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        return self._path(key).stat().st_size

    def open(self, key: str) -> BinaryIO:
        return self._path(key).open("rb")

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def signed_url(self, key: str, *, filename: str, content_type: str, seconds: int) -> None:
        """Files have no URL of their own: the web process streams them."""
        return None

    def _path(self, key: str) -> Path:
        target = (self.root / key).resolve()
        if self.root.resolve() not in target.parents:
            raise ValueError("storage key escapes the storage root")
        return target

    def remove_abandoned(self, max_age_seconds: float) -> int:
        """Delete partial files of dead writers: older than the age, or of a dead local pid."""
        removed = 0
        now = time.time()
        for path in self.partials.glob("*.part"):
            try:
                age = now - path.stat().st_mtime
            except FileNotFoundError:
                continue
            if age > max_age_seconds or dead_local_writer(path.name):
                path.unlink(missing_ok=True)
                removed += 1
        return removed
