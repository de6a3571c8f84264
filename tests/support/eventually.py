"""The one way tests wait: poll a condition until it holds or a deadline passes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(
    predicate: Callable[[], T], timeout: float, what: str = "", interval: float = 0.05
) -> T:
    """Return the first truthy value of `predicate()`; raise TimeoutError naming `what`.

    The predicate runs at least once, and once more at the deadline, so a slow machine
    costs time, never a wrong verdict.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            value = predicate()
            if value:
                return value
            raise TimeoutError(f"{what or predicate}: not within {timeout:g} s")
        time.sleep(interval)
