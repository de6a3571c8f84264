"""Recover events whose worker or message was lost; only rows are written, the relay publishes.

- `processing` past its lease: the worker was killed or hung. The attempt is recorded as
  `expired` and the event becomes `failed`, due at once (or `dead` once its attempts are
  used up), so the relay publishes it again. Claims end such an attempt
  (tasks.claims.expire_lease), as a worker's next claim does.
- `enqueued` for longer than the visibility window: the broker lost the message (a restart
  without persistence) or never delivered it. The event goes back to `received`.

Times are the database's (models.clock), so a host whose clock runs ahead takes back nothing
early. Every move is a compare-and-set: an event a worker claimed (or finished) since it was read
is left alone.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from models.clock import database_now
from models.events import EventStatus, WebhookEvent, move
from models.inbox import wake_relay
from models.outbound import take_back_lost
from rivyahooks_foundation.faultpoints import reach
from storage import remove_abandoned_uploads
from tasks.claims import expire_lapsed_leases
from tasks.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepResult:
    leases_expired: int
    messages_lost: int


def sweep(runtime: Runtime) -> SweepResult:
    """Recover what was lost; return how many events each rule moved."""
    expired = expire_lapsed_leases(runtime)
    lost = _republish_lost(runtime)
    outbound = _take_back_outbound(runtime)
    if outbound:
        log.info("sweep: %d outbound deliveries lost or lapsed, due again", outbound)
    if expired or lost:
        log.info("sweep: %d lease(s) expired, %d lost message(s) republished", expired, lost)
    # Partial files and uploads of killed workers.
    remove_abandoned_uploads(runtime.settings)
    return SweepResult(leases_expired=expired, messages_lost=lost)


def _republish_lost(runtime: Runtime) -> int:
    with runtime.sessions.begin() as session:
        now = database_now(session)
        cutoff = now - dt.timedelta(seconds=runtime.settings.task_visibility_timeout_seconds)
        # One statement: its WHERE is the compare-and-set for every row it moves.
        moved = int(
            session.execute(
                move(
                    EventStatus.RECEIVED,
                    WebhookEvent.status == EventStatus.ENQUEUED,
                    WebhookEvent.enqueued_at < cutoff,
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


def _take_back_outbound(runtime: Runtime) -> int:
    """Make due again the deliveries a lost broker or a vanished sending worker left behind."""
    with runtime.sessions.begin() as session:
        now = database_now(session)
        cutoff = now - dt.timedelta(seconds=runtime.settings.task_visibility_timeout_seconds)
        return take_back_lost(session, now, cutoff)
