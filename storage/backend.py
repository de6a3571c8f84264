"""What every storage backend offers: a staging place, an atomic commit, reads for delivery."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import BinaryIO, Protocol


class Staged(Protocol):
    """Bytes on their way to storage: the download writes into it."""

    def write(self, data: bytes, /) -> object: ...


class Storage(Protocol):
    """What processing and the web process need of a place to keep results."""

    def staging(self, label: str) -> AbstractContextManager[Staged]:
        """Yield a place to write one file; whatever is not committed is removed on exit.

        A write or a commit that finds the storage full raises StorageFull (storage.space).
        """
        ...

    def commit(self, staged: Staged, key: str, content_type: str | None) -> None:
        """Make the complete staged file visible under `key`, in one atomic step."""
        ...

    def ensure_room(self, size: int) -> None:
        """Raise StorageFull unless `size` more bytes fit with room to spare (storage.space).

        A backend that cannot tell (object storage) accepts; a full store then fails the
        write itself, with StorageFull as well.
        """
        ...

    def exists(self, key: str) -> bool: ...

    def size(self, key: str) -> int: ...

    def open(self, key: str) -> BinaryIO:
        """Return the stored file, readable and seekable; FileNotFoundError if it is missing."""
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
