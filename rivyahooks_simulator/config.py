"""The simulator's behaviour knobs (timings, outcomes, sizes) and its fault knobs.

Both are plain dataclasses: set from the command line, from Python, or at runtime through
`POST /_sim/config` and `POST /_sim/faults`. Ratios are probabilities in [0, 1].
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from rivyahooks_protocol import contract


class KnobError(ValueError):
    """A knob has an unknown name or an invalid value."""


@dataclass
class SimConfig:
    """How generations and deliveries behave when nothing goes wrong."""

    queued_seconds: float = 0.2
    processing_seconds: float = 0.5
    failure_ratio: float = 0.1
    outputs: int = 1
    output_bytes: int = 64 * 1024
    url_ttl_seconds: float = 3600.0
    initial_credits: int = 1_000_000
    scheme: str = contract.SCHEME_STANDARD
    delivery_timeout_seconds: float = 5.0
    # Rivya retries for 3 days; the simulator compresses the schedule to seconds:
    # first retry after delivery_backoff_seconds, then doubling up to
    # delivery_backoff_max_seconds, until the attempt bound.
    delivery_max_attempts: int = 6
    delivery_backoff_seconds: float = 0.5
    delivery_backoff_max_seconds: float = 60.0
    delivery_workers: int = 8


@dataclass
class Faults:
    """What goes wrong, and how often."""

    drop_ratio: float = 0.0  # deliveries never sent (the event log still lists the event)
    duplicate_ratio: float = 0.0  # deliveries sent twice
    delay_max: float = 0.0  # seconds: each delivery is held back up to this long
    reorder_ratio: float = 0.0  # deliveries held back further, so later events overtake
    api_error_ratio: float = 0.0  # API calls answered 500/502/503
    rate_limit_ratio: float = 0.0  # API calls answered 429 with Retry-After
    retry_after_seconds: int = 1  # the Retry-After of injected 429/503 answers
    slow_ratio: float = 0.0  # API calls and result downloads delayed by slow_seconds
    slow_seconds: float = 2.0
    cut_download_ratio: float = 0.0  # result bodies cut short under a full Content-Length
    expire_early_ratio: float = 0.0  # result URLs minted already expired
    # Events written to the log late: created `late_write_seconds` in the past, behind
    # events the log already listed (a reader that only reads forward never sees them).
    late_write_ratio: float = 0.0
    late_write_seconds: float = 60.0


RATIO_SUFFIX = "_ratio"


def update_knobs(target: Any, changes: dict[str, Any]) -> None:
    """Set fields of a knob dataclass from JSON-like values, validating names and ranges."""
    fields = {f.name: f for f in dataclasses.fields(target)}
    for name, value in changes.items():
        if name not in fields:
            raise KnobError(f"unknown knob {name!r}")
        current = getattr(target, name)
        if isinstance(current, str):
            if name == "scheme" and value not in contract.SCHEMES:
                raise KnobError(f"scheme must be one of {contract.SCHEMES}")
            setattr(target, name, str(value))
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise KnobError(f"{name} must be a number")
        if value < 0:
            raise KnobError(f"{name} must not be negative")
        if name.endswith(RATIO_SUFFIX) and value > 1:
            raise KnobError(f"{name} must be between 0 and 1")
        setattr(target, name, int(value) if isinstance(current, int) else float(value))


def knobs_json(target: Any) -> dict[str, Any]:
    """Return a knob dataclass as a JSON object."""
    return dataclasses.asdict(target)
