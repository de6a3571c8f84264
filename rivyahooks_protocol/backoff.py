"""How long to wait before trying again: exponential backoff with full jitter, Retry-After.

The one backoff of the service: the client's transport waits it between HTTP attempts, and
the worker schedules failed attempts and database retries with it.
"""

from __future__ import annotations

import email.utils
import random
import time
from datetime import UTC


def backoff_seconds(
    failures: int,
    retry_after: float | None = None,
    *,
    base_seconds: float,
    max_seconds: float,
    clip_at_cap: bool = False,
) -> float:
    """Return the wait after `failures` failed attempts: jittered, >= Retry-After, capped.

    The step doubles per failure from `base_seconds`; the wait is drawn from its upper half,
    so concurrent retries spread out yet none comes back at once. Retry-After is a lower
    bound, and no wait exceeds `max_seconds`. Once the step passes the cap, the wait is drawn
    from the cap's upper half, or with `clip_at_cap` is the cap itself.
    """
    step: float = base_seconds * 2 ** max(0, failures - 1)
    if not clip_at_cap:
        step = min(step, max_seconds)
    wait = random.uniform(step / 2, step)
    if retry_after is not None:
        wait = max(wait, retry_after)
    return min(wait, max_seconds)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Return the wait a Retry-After header asks for, in seconds (>= 0), or None."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit() and len(value) <= 10:
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)
