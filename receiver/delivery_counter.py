"""Count every delivery's outcome in memory and add the counts to the database in batches.

The console shows deliveries per minute, including duplicates and rejected ones, which are
never stored as events. Counting in memory and flushing every few seconds from a background
thread keeps a flood of forged requests from turning into a flood of database writes.

What a killed process loses: a SIGKILL (or a crash) loses the counts since the last flush,
at most FLUSH_INTERVAL_SECONDS of that process's deliveries; counts that could not be written
while the database was down are kept and retried, up to MAX_PENDING_KEYS rows, past which the
oldest minutes are dropped. A graceful stop (SIGTERM to gunicorn) flushes first. Counts are
an operator's picture of traffic, not a ledger: stored events remain the record.
"""

from __future__ import annotations

import atexit
import datetime as dt
import logging
import threading
from collections import Counter
from collections.abc import Callable

from flask import Flask, Response, request
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from models.base import utcnow
from models.delivery_counts import CountKey, DeliveryOutcome, add_counts, minute_of

log = logging.getLogger(__name__)

FLUSH_INTERVAL_SECONDS = 5.0
# A day of minutes times a handful of outcomes and reasons: enough for a long outage.
MAX_PENDING_KEYS = 20_000
MAX_REASON_CHARS = 64
WEBHOOK_ENDPOINT = "webhooks.receive"


class DeliveryCounter:
    """In-memory counts by (minute, outcome, reason), flushed by a background thread."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        interval: float = FLUSH_INTERVAL_SECONDS,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self._sessions = sessions
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: Counter[CountKey] = Counter()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, outcome: str, reason: str = "") -> None:
        """Count one delivery."""
        key = (minute_of(self._clock()), outcome, reason[:MAX_REASON_CHARS])
        with self._lock:
            self._pending[key] += 1

    def flush(self) -> int:
        """Write the pending counts; return how many deliveries were written.

        On a database error the counts go back to the pending ones for the next flush.
        """
        with self._lock:
            taken, self._pending = self._pending, Counter()
        if not taken:
            return 0
        try:
            with self._sessions.begin() as session:
                add_counts(session, taken)
        except SQLAlchemyError as exc:
            log.warning("delivery counts not written error=%s", type(exc).__name__)
            with self._lock:
                self._pending.update(taken)
                self._trim()
            return 0
        return sum(taken.values())

    def _trim(self) -> None:
        excess = len(self._pending) - MAX_PENDING_KEYS
        if excess > 0:
            for key in sorted(self._pending)[:excess]:
                del self._pending[key]
            log.warning("delivery counts dropped minutes=%d (database down too long)", excess)

    def start(self) -> None:
        """Flush every interval from a daemon thread until stop()."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="delivery-counter", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            try:
                self.flush()
            except Exception:  # the thread must outlive any one bad flush
                log.exception("delivery counter flush failed")

    def stop(self) -> None:
        """Stop the thread and write what is pending (a graceful stop loses nothing)."""
        atexit.unregister(self.stop)
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(self._interval + 5)
        self.flush()


def outcome_of(response: Response) -> tuple[str, str]:
    """Return (outcome, reason) of a webhook response, read from its status and code."""
    status = response.status_code
    body = response.get_json(silent=True) if response.is_json else None
    document = body if isinstance(body, dict) else {}
    if status == 200:
        return DeliveryOutcome.DUPLICATE, ""
    if 200 < status < 300:
        if document.get("status") == DeliveryOutcome.QUARANTINED:
            return DeliveryOutcome.QUARANTINED, ""
        return DeliveryOutcome.ACCEPTED, ""
    error = document.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    reason = code if isinstance(code, str) else f"http_{status}"
    if status >= 500:
        return DeliveryOutcome.UNAVAILABLE, reason
    return DeliveryOutcome.REJECTED, reason


def install(app: Flask, sessions: sessionmaker[Session]) -> DeliveryCounter:
    """Count the webhook endpoint's outcomes in this app and start the flushing thread."""
    counter = DeliveryCounter(sessions)

    @app.after_request
    def count_delivery(response: Response) -> Response:
        if request.endpoint == WEBHOOK_ENDPOINT:
            counter.add(*outcome_of(response))
        return response

    app.extensions["delivery_counter"] = counter
    counter.start()
    # gunicorn workers leave through sys.exit on a graceful stop, which runs this.
    atexit.register(counter.stop)
    return counter
