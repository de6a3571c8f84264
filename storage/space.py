"""Room for results: the error a full storage raises, and how a local disk says it is full."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager

# What the kernel says when a filesystem (ENOSPC) or the writer's quota (EDQUOT) has no room.
# EFBIG is not among them: a file-size limit stays whatever is freed.
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class StorageFull(Exception):
    """The storage has no room for a file; trying again helps only once space is freed."""


@contextmanager
def full_disk_raises_storage_full() -> Iterator[None]:
    """Turn an OSError that says the disk is full into StorageFull; let others through."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in FULL_ERRNOS:
            raise
        raise StorageFull(f"no space left on the result disk ({exc.strerror or exc})") from exc
