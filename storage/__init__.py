"""Where result files are kept, behind one small interface selected by STORAGE_URL.

- `file://DIR`: files under a directory (storage/files.py).
- `s3://BUCKET/PREFIX`: S3 or an S3-compatible store (storage/s3.py); the endpoint and the
  credentials come from the usual AWS variables and files, read by boto3 itself.

Whatever the backend, a final key only ever holds a complete, verified file: the bytes are
written to a staging place while they are hashed, and reach their key in one atomic step
once complete (storage/backend.py says what each backend offers, storage/keys.py how keys
are made). Both the workers (to store) and the web process (to deliver) use this package;
it imports nothing of ours but the settings.
"""

from __future__ import annotations

import functools
import os

from rivyahooks_foundation.settings import FileLocation, S3Location, Settings
from storage.backend import Staged, Storage
from storage.keys import download_name, extension_for, output_key
from storage.space import StorageFull

__all__ = [
    "Staged",
    "Storage",
    "StorageFull",
    "download_name",
    "extension_for",
    "open_storage",
    "output_key",
    "remove_abandoned_uploads",
    "storage_cache_clear",
]


def open_storage(settings: Settings) -> Storage:
    """Return the storage STORAGE_URL names (one per process and URL: S3 clients are costly)."""
    return _open(
        settings.storage_location(),
        settings.storage_part_bytes,
        settings.storage_min_free_bytes,
        os.getpid(),
    )


@functools.lru_cache(maxsize=8)
def _open(
    location: FileLocation | S3Location, part_bytes: int, min_free_bytes: int, _pid: int
) -> Storage:
    # The pid is part of the cache key: a forked worker child builds its own client instead
    # of sharing the parent's connections. Each backend is imported only where it is used:
    # boto3 costs a process that keeps files on disk a noticeable start-up.
    if isinstance(location, FileLocation):
        from storage.files import FileStorage

        return FileStorage(location.root, min_free_bytes)
    from storage.s3 import S3Storage

    return S3Storage(location.bucket, location.prefix, part_bytes=part_bytes)


def storage_cache_clear() -> None:
    """Forget the storages built so far (tests change the AWS variables between runs)."""
    _open.cache_clear()


def remove_abandoned_uploads(settings: Settings) -> int:
    """Remove partial files and incomplete uploads of killed workers; return how many.

    The sweeper runs this. Nothing can still be written past the visibility window, since
    no task runs longer.
    """
    return open_storage(settings).remove_abandoned(settings.task_visibility_timeout_seconds)
