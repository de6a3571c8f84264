"""Count every delivery's outcome in memory and add the counts to the database in batches.

The console shows deliveries per minute, including duplicates and rejected ones, which are
never stored as events. Counting in memory and flushing every few seconds from a background
thread keeps a flood of forged requests from turning into a flood of database writes.

The count sits on the receiver's hot path, so it costs one increment under a lock: the
webhook endpoint's answers are a handful of fixed bodies, each read once (status and JSON
code) and remembered by its exact bytes; the clock is read as a float and compared with the
current minute's bounds. Nothing in a request touches the database.

What a killed process loses: a SIGKILL (or a crash) loses the counts since the last flush,
at most FLUSH_INTERVAL_SECONDS of that process's deliveries; counts that could not be written
while the database was down are kept and retried, up to MAX_PENDING_KEYS rows, past which the
oldest minutes are dropped. A graceful stop (SIGTERM to gunicorn) flushes first. Counts are
an operator's picture of traffic, not a ledger: stored events remain the record.
"""

from __future__ import annotations

import atexit
import datetime as dt
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable

from flask import Flask, Response
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from models.delivery_counts import CountKey, DeliveryOutcome, add_counts
from receiver import webhooks

log = logging.getLogger(__name__)

FLUSH_INTERVAL_SECONDS = 5.0
# A day of minutes times a handful of outcomes and reasons: enough for a long outage.
MAX_PENDING_KEYS = 20_000
MAX_REASON_CHARS = 64
# The endpoint answers with a few fixed bodies; anything past this many distinct ones (a
# framework error page, say) is read each time rather than remembered.
MAX_REMEMBERED_ANSWERS = 64
# Answers larger than this are not the endpoint's own small JSON: read, never remembered.
MAX_REMEMBERED_BODY_BYTES = 256

Outcome = tuple[str, str]  # (outcome, reason)


class DeliveryCounter:
    """In-memory counts by minute and (outcome, reason), flushed by a background thread."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        interval: float = FLUSH_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sessions = sessions
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        # Counts by the minute's start (seconds since the epoch) and (outcome, reason).
        self._pending: dict[int, Counter[Outcome]] = {}
        # The minute add() counts into, and its bounds; a new minute opens a new Counter.
        self._current: Counter[Outcome] = Counter()
        self._current_from = self._current_until = 0.0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, outcome: Outcome) -> None:
        """Count one delivery as (outcome, reason)."""
        now = self._clock()
        with self._lock:
            if not self._current_from <= now < self._current_until:
                self._open_minute(now)
            self._current[outcome] += 1

    def _open_minute(self, now: float) -> None:
        start = int(now // 60) * 60
        self._current = self._pending.setdefault(start, Counter())
        self._current_from, self._current_until = float(start), float(start + 60)

    def _take(self) -> dict[int, Counter[Outcome]]:
        with self._lock:
            taken, self._pending = self._pending, {}
            # The next add() opens its minute again, in the new dict.
            self._current_from = self._current_until = 0.0
        return taken

    def flush(self) -> int:
        """Write the pending counts; return how many deliveries were written.

        On a database error the counts go back to the pending ones for the next flush.
        """
        taken = self._take()
        rows: Counter[CountKey] = Counter()
        for start, counts in taken.items():
            minute = dt.datetime.fromtimestamp(start, dt.UTC)
            for (outcome, reason), n in counts.items():
                rows[(minute, outcome, reason)] += n
        if not rows:
            return 0
        try:
            with self._sessions.begin() as session:
                add_counts(session, rows)
        except SQLAlchemyError as exc:
            log.warning("delivery counts not written error=%s", type(exc).__name__)
            self._put_back(taken)
            return 0
        return sum(rows.values())

    def _put_back(self, taken: dict[int, Counter[Outcome]]) -> None:
        with self._lock:
            for start, counts in taken.items():
                self._pending.setdefault(start, Counter()).update(counts)
            keys = sum(len(counts) for counts in self._pending.values())
            dropped = 0
            for start in sorted(self._pending):
                if keys <= MAX_PENDING_KEYS:
                    break
                keys -= len(self._pending.pop(start))
                dropped += 1
            self._current_from = self._current_until = 0.0
        if dropped:
            log.warning("delivery counts dropped minutes=%d (database down too long)", dropped)

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


def outcome_of(response: Response) -> Outcome:
    """Return (outcome, reason) of a webhook response, read from its status and JSON code."""
    status = response.status_code
    try:
        body = json.loads(response.get_data())
    except ValueError:
        body = None
    document = body if isinstance(body, dict) else {}
    if status == 200:
        return DeliveryOutcome.DUPLICATE, ""
    if 200 < status < 300:
        if document.get("status") == DeliveryOutcome.QUARANTINED:
            return DeliveryOutcome.QUARANTINED, ""
        return DeliveryOutcome.ACCEPTED, ""
    error = document.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    reason = code[:MAX_REASON_CHARS] if isinstance(code, str) else f"http_{status}"
    if status >= 500:
        return DeliveryOutcome.UNAVAILABLE, reason
    return DeliveryOutcome.REJECTED, reason


class AnswerOutcomes:
    """outcome_of(), remembered by (status, exact body) for the endpoint's few fixed answers."""

    def __init__(self) -> None:
        self._known: dict[tuple[int, bytes], Outcome] = {}

    def __call__(self, response: Response) -> Outcome:
        if response.is_streamed:
            return outcome_of(response)
        body = response.get_data()
        key = (response.status_code, body)
        found = self._known.get(key)
        if found is None:
            found = outcome_of(response)
            if len(body) <= MAX_REMEMBERED_BODY_BYTES and len(self._known) < MAX_REMEMBERED_ANSWERS:
                # A race between two threads remembers the same value twice: harmless.
                self._known[key] = found
        return found


def install(app: Flask, sessions: sessionmaker[Session]) -> DeliveryCounter:
    """Count the webhook endpoint's outcomes in this app and start the flushing thread."""
    counter = DeliveryCounter(sessions)
    outcomes = AnswerOutcomes()

    def count_delivery(response: Response) -> Response:
        counter.add(outcomes(response))
        return response

    # On the webhook blueprint only: no other request pays for it, not even a check.
    app.after_request_funcs.setdefault(webhooks.bp.name, []).append(count_delivery)
    app.extensions["delivery_counter"] = counter
    counter.start()
    # gunicorn workers leave through sys.exit on a graceful stop, which runs this.
    atexit.register(counter.stop)
    return counter
