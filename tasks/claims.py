"""Claims and leases: how an attempt starts, and how one whose worker was lost ends.

A claim is a compare-and-set that records a lease: a second claim of an event still running
is refused, and every later write is a compare-and-set on the same claim, so a worker whose
lease lapsed cannot overwrite a newer outcome. An attempt whose lease lapsed ends `expired`,
whether the next claim finds it or the sweeper does (expire_lease); the event then becomes
`failed` and due (or `dead` once its attempts are used up).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, func, insert, literal, or_, select, update
from sqlalchemy.orm import Session

from models.base import UTCDateTime, clip
from models.clock import database_now
from models.events import (
    AttemptOutcome,
    EventAttempt,
    EventStatus,
    WebhookEvent,
    finish_attempt,
    move,
)
from models.inbox import wake_relay
from models.outbound_wake import record_final_change
from rivyahooks_foundation.faultpoints import reach
from rivyahooks_foundation.metrics.worker import EVENTS_FINISHED
from tasks.runtime import Runtime

log = logging.getLogger(__name__)
# Lapsed claims taken back per sweep; the next sweep takes the rest.
EXPIRY_BATCH = 500


@dataclass(frozen=True)
class Claim:
    """This worker's hold on an event for one attempt."""

    pk: int
    event_id: str
    task_id: str
    token: str
    number: int  # of this attempt, over the event's life
    attempts: int  # counted against PROCESS_MAX_ATTEMPTS, this one included
    deadline: float  # time.monotonic() by which every download must be over


def _claimable(now: dt.datetime) -> ColumnElement[bool]:
    """SQL for what a worker may claim now (claimable_status says the same in Python)."""
    return or_(
        WebhookEvent.status.in_([EventStatus.RECEIVED, EventStatus.ENQUEUED]),
        and_(WebhookEvent.status == EventStatus.FAILED, WebhookEvent.next_attempt_at <= now),
        and_(WebhookEvent.status == EventStatus.PROCESSING, WebhookEvent.lease_expires_at <= now),
    )


def claimable_status(event: WebhookEvent, now: dt.datetime) -> bool:
    """Return True if a worker may claim the event now (as _claimable, for a loaded row)."""
    if event.status in (EventStatus.RECEIVED, EventStatus.ENQUEUED):
        return True
    if event.status is EventStatus.FAILED:
        return event.next_attempt_at is not None and event.next_attempt_at <= now
    if event.status is EventStatus.PROCESSING:
        return event.lease_expires_at is not None and event.lease_expires_at <= now
    return False


def claim_event(runtime: Runtime, event_id: str, resume: str | None = None) -> Claim | None:
    """Claim the event for one attempt, or return None (and say why in the log)."""
    deadline = time.monotonic() + runtime.limits.downloads
    returned = (WebhookEvent.id, WebhookEvent.task_id, WebhookEvent.attempts)
    with runtime.sessions.begin() as session:
        # The database's clock: a host whose clock runs ahead must not take a live lease.
        now = database_now(session)
        lease = now + dt.timedelta(seconds=first_lease(runtime))
        if resume is not None:
            resumed = session.execute(
                update(WebhookEvent)
                .where(
                    WebhookEvent.event_id == event_id,
                    WebhookEvent.status == EventStatus.PROCESSING,
                    WebhookEvent.claim_token == resume,
                )
                .values(lease_expires_at=lease, updated_at=now)
                .returning(*returned)
            ).first()
            if resumed is not None:
                number = session.scalar(
                    select(func.max(EventAttempt.number)).where(EventAttempt.event_id == event_id)
                )
                log.info("event %s: resuming attempt %s after a database error", event_id, number)
                pk, task_id, attempts = resumed
                assert task_id is not None  # a claim is only ever made with a task id
                return Claim(pk, event_id, task_id, resume, number or 1, attempts, deadline)
        token = uuid.uuid4().hex
        claimed = session.execute(
            move(
                EventStatus.PROCESSING,
                WebhookEvent.event_id == event_id,
                _claimable(now),
                WebhookEvent.task_id.is_not(None),
                WebhookEvent.attempts < runtime.settings.process_max_attempts,
                attempts=WebhookEvent.attempts + 1,
                claim_token=token,
                lease_expires_at=lease,
                started_at=now,
                finished_at=None,
                next_attempt_at=None,
                status_reason=None,
                updated_at=now,
            ).returning(*returned)
        ).first()
        if claimed is None:
            _not_claimed(session, runtime, event_id, now)
            return None
        # A lapsed lease left its attempt open: the worker was killed or hung.
        session.execute(finish_attempt(event_id, AttemptOutcome.EXPIRED, _EXPIRED_ERROR, now))
        number = session.execute(
            insert(EventAttempt)
            .from_select(
                ["event_id", "number", "worker", "started_at"],
                select(
                    literal(event_id),
                    func.coalesce(func.max(EventAttempt.number), 0) + 1,
                    literal(clip(EventAttempt.worker, runtime.worker)),
                    literal(now, UTCDateTime()),
                ).where(EventAttempt.event_id == event_id),
            )
            .returning(EventAttempt.number)
        ).scalar_one()
    pk, task_id, attempts = claimed
    assert task_id is not None  # the claim's WHERE asks for one
    return Claim(pk, event_id, task_id, token, number, attempts, deadline)


def first_lease(runtime: Runtime) -> float:
    """Return a new claim's lease in seconds: never past the hard time limit (plus grace)."""
    return min(runtime.limits.lease, runtime.limits.renewals_end)


_EXPIRED_ERROR = "the lease expired before the worker finished (killed, or stuck past the limit)"


def _not_claimed(session: Session, runtime: Runtime, event_id: str, now: dt.datetime) -> None:
    """Say why the claim failed; end the event `dead` if it can never be claimed."""
    event = session.scalars(
        select(WebhookEvent).where(WebhookEvent.event_id == event_id)
    ).one_or_none()
    if event is None:
        log.warning("event %s not found; nothing to process", event_id)
        return
    if not claimable_status(event, now):
        if event.status is EventStatus.PROCESSING:
            log.info(
                "event %s is being processed under another claim until %s; message dropped",
                event_id,
                event.lease_expires_at,
            )
        elif event.status is EventStatus.FAILED:
            log.info(
                "event %s is not due until %s; message dropped", event_id, event.next_attempt_at
            )
        else:
            log.info("event %s already %s; skipping", event_id, event.status.value)
        return
    if event.task_id is None:
        reason = "event has no task id"
    elif event.attempts >= runtime.settings.process_max_attempts:
        reason = f"gave up after {event.attempts} attempts; last error: {event.last_error}"
    else:
        return  # it changed meanwhile; whoever moved it carries it on
    gave_up = session.execute(
        move(
            EventStatus.DEAD,
            WebhookEvent.id == event.id,
            WebhookEvent.status == event.status,
            WebhookEvent.attempts == event.attempts,
            status_reason=clip(WebhookEvent.status_reason, reason),
            finished_at=now,
            claim_token=None,
            lease_expires_at=None,
            next_attempt_at=None,
        )
    ).rowcount  # type: ignore[attr-defined]
    if gave_up:
        session.execute(finish_attempt(event_id, AttemptOutcome.EXPIRED, _EXPIRED_ERROR, now))
        if event.task_id is not None:
            record_final_change(session, event.task_id)
        log.error("event %s dead: %s", event_id, reason)
        EVENTS_FINISHED.labels(EventStatus.DEAD.value).inc()


# --- lapsed leases, as the sweeper finds them ----------------------------------------------


@dataclass(frozen=True)
class LapsedClaim:
    """An event `processing` under a claim whose lease has lapsed, as the sweeper read it."""

    pk: int
    event_id: str
    claim_token: str | None
    attempts: int
    lease_expires_at: dt.datetime
    task_id: str | None = None


def expire_lapsed_leases(runtime: Runtime) -> int:
    """Take back every event whose claim's lease lapsed; return how many were taken back."""
    with runtime.sessions() as session:
        now = database_now(session)
        lapsed = [
            LapsedClaim(pk, event_id, token, attempts, lease, task_id)
            for pk, event_id, token, attempts, lease, task_id in session.execute(
                select(
                    WebhookEvent.id,
                    WebhookEvent.event_id,
                    WebhookEvent.claim_token,
                    WebhookEvent.attempts,
                    WebhookEvent.lease_expires_at,
                    WebhookEvent.task_id,
                )
                .where(
                    WebhookEvent.status == EventStatus.PROCESSING,
                    WebhookEvent.lease_expires_at < now,
                )
                .order_by(WebhookEvent.lease_expires_at)
                .limit(EXPIRY_BATCH)
            )
            if lease is not None
        ]
    moved = 0
    for claim in lapsed:
        if expire_lease(runtime, claim):
            moved += 1
            reach("sweeper.moved")
    return moved


def expire_lease(runtime: Runtime, claim: LapsedClaim) -> bool:
    """Take the event back from a lapsed claim; False if anyone moved it since it was read.

    The attempt is recorded `expired`; the event becomes `failed`, due now (the relay
    publishes it), or `dead` once its attempts are used up.
    """
    error = (
        f"attempt {claim.attempts}: the lease expired at {claim.lease_expires_at} before the "
        "worker finished (killed, lost, or stuck past PROCESS_TIME_LIMIT_SECONDS)"
    )
    if claim.attempts >= runtime.settings.process_max_attempts:
        target, reason = EventStatus.DEAD, f"gave up after {claim.attempts} attempts: {error}"
    else:
        target, reason = EventStatus.FAILED, "lease expired; retry scheduled now"
    with runtime.sessions.begin() as session:
        now = database_now(session)
        # Compare-and-set: the same claim still holds it and its lease still lapsed, so
        # nobody claimed, finished or renewed it since the read.
        changed = session.execute(
            move(
                target,
                WebhookEvent.id == claim.pk,
                WebhookEvent.status == EventStatus.PROCESSING,
                WebhookEvent.claim_token.is_(None)
                if claim.claim_token is None
                else WebhookEvent.claim_token == claim.claim_token,
                WebhookEvent.lease_expires_at < now,
                status_reason=clip(WebhookEvent.status_reason, reason),
                last_error=clip(WebhookEvent.last_error, error),
                next_attempt_at=now if target is EventStatus.FAILED else None,
                finished_at=now if target is EventStatus.DEAD else None,
                claim_token=None,
                lease_expires_at=None,
                updated_at=now,
            )
        ).rowcount  # type: ignore[attr-defined]
        if not changed:
            return False
        if target is EventStatus.DEAD and claim.task_id is not None:
            record_final_change(session, claim.task_id)
        session.execute(
            finish_attempt(
                claim.event_id,
                AttemptOutcome.EXPIRED,
                error,
                now,
                retry_at=now if target is EventStatus.FAILED else None,
            )
        )
        wake_relay(session)
    log.warning("event %s: %s", claim.event_id, error)
    return True
