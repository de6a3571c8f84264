"""The lifecycle's invariant, checked on a live database: no event is ever stranded.

Every event is terminal (processed, ignored, dead, quarantined) or scheduled: something
will act on it without an operator.

- `received` or `failed` with a due time: the relay publishes it then;
- `enqueued` within the visibility window: a worker will take the message (past the
  window the message is presumed lost);
- `processing` with a live lease: a worker holds it, and when the lease lapses the sweeper
  takes it back.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.events import UNFINISHED_STATUSES, EventStatus, WebhookEvent


@dataclass(frozen=True)
class Stranded:
    event_id: str
    status: str
    why: str


@dataclass
class AuditReport:
    checked: int = 0
    unfinished: Counter[str] = field(default_factory=Counter)
    stranded: list[Stranded] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.stranded


def stranded_reason(event: WebhookEvent, now: dt.datetime, visibility: dt.timedelta) -> str | None:
    """Return why nothing will act on `event` by itself, or None if something will."""
    status = event.status
    if status in (EventStatus.RECEIVED, EventStatus.FAILED):
        if event.next_attempt_at is None:
            return f"{status.value} without a due time: the relay will never publish it"
        return None
    if status is EventStatus.ENQUEUED:
        if event.enqueued_at is None:
            return "enqueued without an enqueued time"
        if event.enqueued_at < now - visibility:
            return (
                f"enqueued since {event.enqueued_at.isoformat()}, longer than the visibility "
                "window: the message is presumed lost (the sweeper publishes it again)"
            )
        return None
    if status is EventStatus.PROCESSING:
        if event.lease_expires_at is None or event.claim_token is None:
            return "processing without a claim: no worker holds it and no lease will lapse"
        if event.lease_expires_at <= now:
            return (
                f"processing, but its lease expired at {event.lease_expires_at.isoformat()}: "
                "the worker died or hung (the sweeper takes it back)"
            )
        return None
    return None


def audit(session: Session, now: dt.datetime, visibility_seconds: float) -> AuditReport:
    """Check every unfinished event; terminal ones need no check."""
    report = AuditReport()
    visibility = dt.timedelta(seconds=visibility_seconds)
    query = (
        select(WebhookEvent)
        .where(WebhookEvent.status.in_(UNFINISHED_STATUSES))
        .order_by(WebhookEvent.id)
        .execution_options(yield_per=1000)
    )
    for event in session.scalars(query):
        report.checked += 1
        report.unfinished[event.status.value] += 1
        why = stranded_reason(event, now, visibility)
        if why is not None:
            report.stranded.append(Stranded(event.event_id, event.status.value, why))
    return report
