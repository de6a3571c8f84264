"""Deterministic result bytes: the same (task id, index, size) always gives the same bytes.

Tests and benchmarks know the sha256 of a result without storing it, and the simulator can
serve gigabytes without holding them. Each 64 KiB block is a 32-byte hash of the block
number followed by a rotation of one pseudo-random base block; slicing is a memory copy,
so a block costs one small hash and no per-byte Python work (several hundred MB/s).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from functools import lru_cache

BLOCK_BYTES = 64 * 1024
_HEAD_BYTES = 32


def _seed(task_id: str, index: int) -> bytes:
    return hashlib.sha256(f"{task_id}:{index}".encode()).digest()


@lru_cache(maxsize=64)
def _base_block(seed: bytes) -> bytes:
    return hashlib.shake_256(seed).digest(BLOCK_BYTES)


def _block(seed: bytes, base: bytes, number: int) -> bytes:
    head = hashlib.sha256(seed + number.to_bytes(8, "big")).digest()
    offset = int.from_bytes(head[:4], "big") % BLOCK_BYTES
    rotated = base[offset:] + base[:offset]
    return head + rotated[: BLOCK_BYTES - _HEAD_BYTES]


def iter_result_bytes(task_id: str, index: int, size: int) -> Iterator[bytes]:
    """Yield the `size` bytes of result `index` of `task_id`, in blocks of 64 KiB."""
    seed = _seed(task_id, index)
    base = _base_block(seed)
    remaining = size
    number = 0
    while remaining > 0:
        block = _block(seed, base, number)
        if remaining < BLOCK_BYTES:
            block = block[:remaining]
        remaining -= len(block)
        number += 1
        yield block


@lru_cache(maxsize=1024)
def result_bytes_sha256(task_id: str, index: int, size: int) -> str:
    """Return the hex sha256 of the bytes `iter_result_bytes` yields."""
    digest = hashlib.sha256()
    for block in iter_result_bytes(task_id, index, size):
        digest.update(block)
    return digest.hexdigest()
