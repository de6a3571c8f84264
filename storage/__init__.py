"""Where result files are kept, behind one small interface selected by STORAGE_URL.

- `file://DIR`: files under a directory (storage/files.py).
- `s3://BUCKET/PREFIX`: S3 or an S3-compatible store (storage/s3.py); the endpoint and the
  credentials come from the usual AWS variables and files, read by boto3 itself.

Whatever the backend, a final key only ever holds a complete, verified file: the bytes are
written to a staging place while they are hashed, and reach their key in one atomic step
once complete. Keys carry the task id, the output index and the sha256, so two workers that
store the same output write the same bytes to the same key. Both the workers (to store) and
the web process (to deliver) use this package; it imports nothing of ours but the settings.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import socket
from contextlib import AbstractContextManager
from typing import BinaryIO, Protocol

from rivyahooks_foundation.settings import Settings, SettingsError

_SAFE = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")

# Extensions by content type. A fixed table rather than the mimetypes module: that one reads
# the host's mime.types, and two workers must derive the same key for the same output.
EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
    "image/gif": ".gif",
    "image/avif": ".avif",
    "image/svg+xml": ".svg",
    "video/mp4": ".mp4",
    "video/webm": ".webm",
    "video/quicktime": ".mov",
    "audio/mpeg": ".mp3",
    "audio/mp4": ".m4a",
    "audio/aac": ".aac",
    "audio/wav": ".wav",
    "audio/x-wav": ".wav",
    "audio/wave": ".wav",
    "audio/ogg": ".ogg",
    "audio/flac": ".flac",
    "audio/webm": ".weba",
    "application/json": ".json",
    "text/plain": ".txt",
}
DEFAULT_EXTENSION = ".bin"


def extension_for(content_type: str | None) -> str:
    """Return the file extension of a content type (parameters ignored), `.bin` if unknown."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return EXTENSIONS.get(media_type, DEFAULT_EXTENSION)


def output_key(task_id: str, index: int, sha256: str, content_type: str | None = None) -> str:
    """Return the storage key of one output; unsafe task ids are replaced by a hash."""
    folder = task_id if _SAFE.match(task_id) and not task_id.startswith(".") else None
    if folder is None:
        folder = "id-" + hashlib.sha256(task_id.encode()).hexdigest()[:32]
    return f"{folder}/{index:04d}-{sha256}{extension_for(content_type)}"


def download_name(task_id: str, index: int, content_type: str | None) -> str:
    """Return the file name an app is offered for one output."""
    folder = task_id if _SAFE.match(task_id) and not task_id.startswith(".") else "result"
    return f"{folder}-{index}{extension_for(content_type)}"


class Staged(Protocol):
    """Bytes on their way to storage: the download writes into it."""

    def write(self, data: bytes, /) -> object: ...


class Storage(Protocol):
    """What processing and the web process need of a place to keep results."""

    def staging(self, label: str) -> AbstractContextManager[Staged]:
        """Yield a place to write one file; whatever is not committed is removed on exit."""
        ...

    def commit(self, staged: Staged, key: str, content_type: str | None) -> None:
        """Make the complete staged file visible under `key`, in one atomic step."""
        ...

    def exists(self, key: str) -> bool: ...

    def size(self, key: str) -> int: ...

    def open(self, key: str) -> BinaryIO:
        """Return the stored file, readable and seekable, for delivery."""
        ...

    def signed_url(self, key: str, *, filename: str, content_type: str, seconds: int) -> str | None:
        """Return a short-lived URL that serves the file directly, or None if there is none."""
        ...

    def delete(self, key: str) -> None:
        """Remove a stored file (retention); a missing one is already what was wanted."""
        ...

    def remove_abandoned(self, max_age_seconds: float) -> int:
        """Remove what killed writers left in staging; return how many items went."""
        ...


def writer_id() -> str:
    """Return `<host>.<pid>`: staged names carry it so a dead local writer is recognisable."""
    # Dots would make staged names ambiguous to parse.
    return f"{socket.gethostname().replace('.', '-')}.{os.getpid()}"


def safe_label(label: str) -> str:
    """Return `label` reduced to characters every backend accepts in a name."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", label)[:100]


def dead_local_writer(name: str) -> bool:
    """Return True if a staged name `<label>.<host>.<pid>.<uuid>[.part]` is of a dead process here.

    The label may itself contain dots, hence parsing from the right.
    """
    parts = name.removesuffix(".part").split(".")
    host = socket.gethostname().replace(".", "-")
    if len(parts) < 4 or parts[-3] != host or not parts[-2].isdigit():
        return False
    try:
        os.kill(int(parts[-2]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def open_storage(settings: Settings) -> Storage:
    """Return the storage STORAGE_URL names (one per process and URL: S3 clients are costly)."""
    return _open(settings.storage_url, settings.storage_part_bytes, os.getpid())


@functools.lru_cache(maxsize=8)
def _open(storage_url: str, part_bytes: int, _pid: int) -> Storage:
    # The pid is part of the cache key: a forked worker child builds its own client instead
    # of sharing the parent's connections.
    if storage_url.startswith("file://"):
        from storage.files import FileStorage

        return FileStorage(Settings(storage_url=storage_url).storage_root())
    if storage_url.startswith("s3://"):
        from storage.s3 import S3Storage

        bucket, prefix = parse_s3_url(storage_url)
        return S3Storage(bucket, prefix, part_bytes=part_bytes)
    raise SettingsError("STORAGE_URL must start with file:// or s3://")


def storage_cache_clear() -> None:
    """Forget the storages built so far (tests change the AWS variables between runs)."""
    _open.cache_clear()


def remove_abandoned_uploads(settings: Settings) -> int:
    """Remove partial files and incomplete uploads of killed workers; return how many.

    The sweeper runs this. Nothing can still be written past the visibility window, since
    no task runs longer.
    """
    return open_storage(settings).remove_abandoned(settings.task_visibility_timeout_seconds)


def parse_s3_url(url: str) -> tuple[str, str]:
    """Return the bucket and the key prefix (empty or ending in '/') of an s3:// URL."""
    rest = url.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    prefix = prefix.strip("/")
    return bucket, (prefix + "/" if prefix else "")
