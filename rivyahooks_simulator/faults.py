"""Seeded fault decisions, plus queues of forced faults for tests that need exact control."""

from __future__ import annotations

import random
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

from rivyahooks_simulator.config import Faults, KnobError, knobs_json, update_knobs


@dataclass(frozen=True)
class ForcedAPIError:
    """An error the next API call answers with, whatever it asks."""

    status: int
    code: str | None = None
    retry_after: str | None = None
    # A raw body (e.g. an HTML error page from a proxy) instead of the JSON envelope.
    body: str | None = None
    content_type: str = "text/html"


# Download faults that can be forced on the next result requests.
DOWNLOAD_FAULTS = ("cut", "expired", "error", "rate_limited")


class FaultInjector:
    """Decide faults with one seeded RNG; forced faults are used first, in order."""

    def __init__(self, faults: Faults, seed: int | None) -> None:
        self.faults = faults
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._next_api: deque[ForcedAPIError] = deque()
        self._next_download: deque[str] = deque()

    def chance(self, ratio: float) -> bool:
        """Return True with probability `ratio`."""
        if ratio <= 0:
            return False
        with self._lock:
            return self._rng.random() < ratio

    def uniform(self, low: float, high: float) -> float:
        """Return a seeded random number in [low, high]."""
        with self._lock:
            return self._rng.uniform(low, high)

    def choice(self, options: list[str]) -> str:
        """Return one of `options`, seeded."""
        with self._lock:
            return self._rng.choice(options)

    def next_api_error(self) -> ForcedAPIError | None:
        """Pop the next forced API error, if any."""
        with self._lock:
            return self._next_api.popleft() if self._next_api else None

    def next_download_fault(self) -> str | None:
        """Pop the next forced download fault, if any."""
        with self._lock:
            return self._next_download.popleft() if self._next_download else None

    def update(self, changes: dict[str, Any]) -> None:
        """Apply a `POST /_sim/faults` body: knob values and forced-fault queues."""
        changes = dict(changes)
        forced_api = changes.pop("next_api_errors", None)
        forced_download = changes.pop("next_download_faults", None)
        parsed_api = [_forced_api(item) for item in forced_api or []]
        for item in forced_download or []:
            if item not in DOWNLOAD_FAULTS:
                raise KnobError(f"download faults are {DOWNLOAD_FAULTS}")
        with self._lock:
            update_knobs(self.faults, changes)
            self._next_api.extend(parsed_api)
            self._next_download.extend(forced_download or [])

    def as_json(self) -> dict[str, Any]:
        """Return the knobs and the pending forced faults."""
        with self._lock:
            body = knobs_json(self.faults)
            body["next_api_errors"] = [vars(e) for e in self._next_api]
            body["next_download_faults"] = list(self._next_download)
        return body


def _forced_api(item: Any) -> ForcedAPIError:
    if not isinstance(item, dict) or not isinstance(item.get("status"), int):
        raise KnobError("each of next_api_errors needs an integer status")
    status = item["status"]
    if not 400 <= status <= 599:
        raise KnobError("a forced API error status is 400..599")
    retry_after = item.get("retry_after")
    return ForcedAPIError(
        status=status,
        code=item.get("code"),
        retry_after=None if retry_after is None else str(retry_after),
        body=item.get("body"),
        content_type=item.get("content_type", "text/html"),
    )
