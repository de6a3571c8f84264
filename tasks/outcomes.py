"""Outcomes of an attempt: what can end it, turning any exception into an outcome, recording it.

Every exception after the claim, named or not, ends the attempt as a recorded failure
(`failed` with a due time for the relay, or `dead`), counted against PROCESS_MAX_ATTEMPTS. A
database error cannot be recorded: DatabaseUnavailable tells the task to retry later,
resuming the same claim.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from models.base import clip
from models.clock import database_now
from models.events import AttemptOutcome, EventStatus, WebhookEvent, finish_attempt, move
from models.outbound_wake import record_final_change
from rivyahooks_foundation.metrics.worker import EVENTS_FINISHED
from rivyahooks_protocol.backoff import backoff_seconds
from tasks.claims import Claim
from tasks.runtime import Runtime

log = logging.getLogger(__name__)

# No attempt of the worker waits longer than this, whatever the attempt or Retry-After.
BACKOFF_MAX_SECONDS = 300.0


class PermanentFailure(Exception):
    """Retrying cannot help: the event ends `dead` with this reason."""


class TransientFailure(Exception):
    """Retrying may help; `retry_after` is the server's hint in seconds, if any."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class DatabaseUnavailable(Exception):
    """The database failed; run the task again later, resuming the claim `resume` (if any)."""

    def __init__(self, resume: str | None) -> None:
        super().__init__("database unavailable")
        self.resume = resume


@dataclass(frozen=True)
class Outcome:
    """What an attempt ended as: the event's next status, and why."""

    status: EventStatus
    reason: str | None = None
    outputs_stored: int = 0
    retry_after: float | None = None  # the server's hint for the next attempt, if it gave one
    storage_full: bool = False  # the storage had no room: the next attempt waits much longer


def failure_outcome(runtime: Runtime, claim: Claim, exc: Exception) -> Outcome:
    """Turn any exception of an attempt into the outcome to record."""
    if isinstance(exc, PermanentFailure):
        return Outcome(EventStatus.DEAD, str(exc))
    error = str(exc) if isinstance(exc, TransientFailure) else f"{type(exc).__name__}: {exc}"
    if not isinstance(exc, TransientFailure):
        # Not a failure this code anticipated: the traceback is what a developer needs.
        log.exception("event %s attempt %d raised %s", claim.event_id, claim.number, error)
    if isinstance(exc, StorageFullFailure):
        # Checked before the attempts: waiting for room is not the event's failure.
        return Outcome(EventStatus.FAILED, error, storage_full=True)
    if claim.attempts >= runtime.settings.process_max_attempts:
        return Outcome(EventStatus.DEAD, f"gave up after {claim.attempts} attempts: {error}")
    retry_after = exc.retry_after if isinstance(exc, TransientFailure) else None
    return Outcome(EventStatus.FAILED, error, retry_after=retry_after)


def record_outcome(runtime: Runtime, claim: Claim, outcome: Outcome) -> bool:
    """Record the attempt's outcome under its claim; return False if the claim was taken over.

    A failure schedules the next attempt: the relay publishes the event at next_attempt_at.
    """
    with runtime.sessions.begin() as session:
        now = database_now(session)
        moved, retry_at = _record(session, runtime, claim, outcome, now)
    if moved and outcome.status is not EventStatus.FAILED:
        EVENTS_FINISHED.labels(outcome.status.value).inc()
    if not moved:
        log.warning(
            "event %s: attempt %d's claim was taken over (its lease lapsed); outcome %s dropped",
            claim.event_id,
            claim.number,
            outcome.status.value,
        )
    elif outcome.status is EventStatus.FAILED:
        log.warning(
            "event %s attempt %d failed (%s); retry at %s",
            claim.event_id,
            claim.number,
            outcome.reason,
            retry_at,
        )
    elif outcome.status is EventStatus.DEAD:
        log.error("event %s dead: %s", claim.event_id, outcome.reason)
    return bool(moved)


def _record(
    session: Session, runtime: Runtime, claim: Claim, outcome: Outcome, now: dt.datetime
) -> tuple[bool, dt.datetime | None]:
    """Write the outcome at the database's `now`; return (moved, retry_at)."""
    values: dict[str, Any] = {
        "finished_at": now,
        "claim_token": None,
        "lease_expires_at": None,
        "status_reason": clip(WebhookEvent.status_reason, outcome.reason),
        "updated_at": now,
    }
    error = None
    retry_at = None
    if outcome.status in (EventStatus.FAILED, EventStatus.DEAD):
        error = outcome.reason
        values["last_error"] = clip(WebhookEvent.last_error, error)
    if outcome.status is EventStatus.FAILED:
        delay = backoff_seconds(
            claim.attempts,
            outcome.retry_after,
            base_seconds=runtime.settings.process_retry_base_seconds,
            max_seconds=BACKOFF_MAX_SECONDS,
        )
        if outcome.storage_full:
            delay = storage_full_delay()
            # Not counted against PROCESS_MAX_ATTEMPTS: the claim counted it, this gives it back.
            values["attempts"] = WebhookEvent.attempts - 1
        retry_at = now + dt.timedelta(seconds=delay)
        values["next_attempt_at"] = retry_at
        values["status_reason"] = f"attempt {claim.number} failed; retry at {retry_at.isoformat()}"
    moved = session.execute(
        move(
            outcome.status,
            WebhookEvent.id == claim.pk,
            WebhookEvent.claim_token == claim.token,
            **values,
        )
    ).rowcount  # type: ignore[attr-defined]
    session.execute(
        finish_attempt(
            claim.event_id,
            AttemptOutcome(outcome.status.value),
            error,
            now,
            retry_at=retry_at,
            number=claim.number,
        )
    )
    if moved and outcome.status is EventStatus.DEAD:
        # Given up: the generation's final state changed (apps are told `result.failed`).
        record_final_change(session, claim.task_id)
    return bool(moved), retry_at


# --- a full result storage ------------------------------------------------------------------
#
# A full storage does not empty itself: an operator frees space (or raises a quota), or the
# results retention runs. The ordinary backoff (2 s doubling) spent the default 8 attempts
# in about 4 minutes and every event ended `dead` before anyone could react. So an attempt
# that found the storage full is not counted against PROCESS_MAX_ATTEMPTS (the event waits
# as long as the storage stays full, the RivyaHooksResultStorageFull alert saying so), and
# its retries come every 45 to 90 s: rare enough to cost little (one generation fetch and a
# download refused at its headers), often enough that once room is back every waiting event
# is processed within the 2 minutes a fault may cost.
STORAGE_FULL_RETRY_MAX_SECONDS = 90.0


class StorageFullFailure(TransientFailure):
    """The result storage had no room; the next attempt waits the long backoff of a full disk."""


def storage_full_delay() -> float:
    """Return the wait before an event that found the storage full is tried again."""
    # One step of the backoff at its ceiling: the same wait however often it was refused.
    return backoff_seconds(
        1,
        base_seconds=STORAGE_FULL_RETRY_MAX_SECONDS,
        max_seconds=STORAGE_FULL_RETRY_MAX_SECONDS,
    )
