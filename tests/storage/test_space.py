"""What counts as a full disk: ENOSPC and EDQUOT become StorageFull, nothing else does."""

from __future__ import annotations

import errno

import pytest

from storage.space import StorageFull, full_disk_raises_storage_full


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_no_space_and_over_quota_are_a_full_disk(code: int) -> None:
    error = OSError(code, "the kernel's words")
    with pytest.raises(StorageFull) as raised, full_disk_raises_storage_full():
        raise error
    assert raised.value.__cause__ is error
    assert "the kernel's words" in str(raised.value)


@pytest.mark.parametrize("code", [errno.EFBIG, errno.EIO, errno.EACCES])
def test_other_errors_pass_unchanged(code: int) -> None:
    error = OSError(code, "something else")
    with pytest.raises(OSError, match="something else") as raised, full_disk_raises_storage_full():
        raise error
    assert raised.value is error
