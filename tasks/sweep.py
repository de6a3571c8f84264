"""Recover events whose worker or message was lost; only rows are written, the relay publishes.

- `processing` past its lease: the worker was killed or hung. The attempt is recorded as
  `expired` and the event becomes `failed`, due at once (or `dead` once its attempts are
  used up), so the relay publishes it again.
- `enqueued` for longer than the visibility window: the broker lost the message (a restart
  without persistence) or never delivered it. The event goes back to `received`.

Every move is a compare-and-set: an event a worker claimed (or finished) since it was read
is left alone.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy import select

from models.base import clip, utcnow
from models.events import AttemptOutcome, EventStatus, WebhookEvent, finish_attempt, move
from models.inbox import wake_relay
from rivyahooks_foundation.faultpoints import reach
from storage import remove_abandoned_uploads
from tasks.runtime import Runtime

log = logging.getLogger(__name__)
BATCH = 500
E = WebhookEvent


@dataclass(frozen=True)
class SweepResult:
    leases_expired: int
    messages_lost: int


def sweep(runtime: Runtime) -> SweepResult:
    """Recover what was lost; return how many events each rule moved."""
    now = utcnow()
    expired = _expire_leases(runtime, now)
    lost = _republish_lost(runtime, now)
    if expired or lost:
        log.info("sweep: %d lease(s) expired, %d lost message(s) republished", expired, lost)
    # Partial files and uploads of killed workers.
    remove_abandoned_uploads(runtime.settings)
    return SweepResult(leases_expired=expired, messages_lost=lost)


@dataclass(frozen=True)
class LapsedClaim:
    """An event `processing` under a claim whose lease has lapsed, as the sweeper read it."""

    pk: int
    event_id: str
    claim_token: str | None
    attempts: int
    lease_expires_at: dt.datetime


def _expire_leases(runtime: Runtime, now: dt.datetime) -> int:
    with runtime.sessions() as session:
        lapsed = [
            LapsedClaim(pk, event_id, token, attempts, lease)
            for pk, event_id, token, attempts, lease in session.execute(
                select(E.id, E.event_id, E.claim_token, E.attempts, E.lease_expires_at)
                .where(E.status == EventStatus.PROCESSING, E.lease_expires_at < now)
                .order_by(E.lease_expires_at)
                .limit(BATCH)
            )
            if lease is not None
        ]
    moved = 0
    for claim in lapsed:
        if expire_lease(runtime, claim, now):
            moved += 1
            reach("sweeper.moved")
    return moved


def expire_lease(runtime: Runtime, claim: LapsedClaim, now: dt.datetime) -> bool:
    """Take the event back from a lapsed claim; False if anyone moved it since it was read.

    The attempt is recorded `expired`; the event becomes `failed`, due now (the relay
    publishes it), or `dead` once its attempts are used up.
    """
    error = (
        f"attempt {claim.attempts}: the lease expired at {claim.lease_expires_at} before the "
        "worker finished (killed, or stuck past PROCESS_TIME_LIMIT_SECONDS)"
    )
    if claim.attempts >= runtime.settings.process_max_attempts:
        target, reason = EventStatus.DEAD, f"gave up after {claim.attempts} attempts: {error}"
    else:
        target, reason = EventStatus.FAILED, "lease expired; retry scheduled now"
    with runtime.sessions.begin() as session:
        # Compare-and-set: the same claim still holds it and its lease still lapsed, so
        # nobody claimed, finished or renewed it since the read.
        changed = session.execute(
            move(
                target,
                E.id == claim.pk,
                E.status == EventStatus.PROCESSING,
                E.claim_token.is_(None)
                if claim.claim_token is None
                else E.claim_token == claim.claim_token,
                E.lease_expires_at < now,
                status_reason=clip(E.status_reason, reason),
                last_error=clip(E.last_error, error),
                next_attempt_at=now if target is EventStatus.FAILED else None,
                finished_at=now if target is EventStatus.DEAD else None,
                claim_token=None,
                lease_expires_at=None,
                updated_at=now,
            )
        ).rowcount  # type: ignore[attr-defined]
        if not changed:
            return False
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


def _republish_lost(runtime: Runtime, now: dt.datetime) -> int:
    cutoff = now - dt.timedelta(seconds=runtime.settings.task_visibility_timeout_seconds)
    with runtime.sessions.begin() as session:
        # One statement: its WHERE is the compare-and-set for every row it moves.
        moved = int(
            session.execute(
                move(
                    EventStatus.RECEIVED,
                    E.status == EventStatus.ENQUEUED,
                    E.enqueued_at < cutoff,
                    next_attempt_at=now,
                    status_reason="the broker did not deliver it within the visibility "
                    "window; publishing again",
                    updated_at=now,
                )
            ).rowcount  # type: ignore[attr-defined]
        )
        if moved:
            wake_relay(session)
    if moved:
        reach("sweeper.moved")
    return moved
