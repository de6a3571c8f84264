"""The lifecycle's invariant, checked on a live database: no event is ever stranded.

Every event is terminal (processed, ignored, dead, quarantined) or scheduled: something
will act on it without an operator.

- `received` or `failed` with a due time: the relay publishes it then;
- `enqueued` within the visibility window: a worker will take the message (past the
  window the message is presumed lost);
- `processing` with a live lease: a worker holds it, and when the lease lapses the sweeper
  takes it back.

An event that is scheduled, but that nothing will act on for longer than PARKED_AFTER while
the database and broker answer, is parked: a lease far ahead (a worker of older settings),
a due time long past (no relay publishes), or `enqueued` while the broker holds fewer
messages than such events (a broker restarted empty).

Outbound deliveries are held to the same invariant (models/outbound_audit.py): delivered,
scheduled, or given up with the reason.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.events import UNFINISHED_STATUSES, EventStatus, WebhookEvent
from models.outbound_audit import DeliveriesAudit, Windows, audit_deliveries


@dataclass(frozen=True)
class Stranded:
    event_id: str
    status: str
    why: str


# Once a fault is over every event is processed within this; longer waits are parked.
PARKED_AFTER = dt.timedelta(minutes=2)


@dataclass(frozen=True)
class Parked:
    event_id: str
    status: str
    why: str
    next_step: str


@dataclass
class AuditReport:
    checked: int = 0
    unfinished: Counter[str] = field(default_factory=Counter)
    stranded: list[Stranded] = field(default_factory=list)
    parked: list[Parked] = field(default_factory=list)
    broker_messages: int | None = None  # None: the broker was not read
    deliveries: DeliveriesAudit = field(default_factory=DeliveriesAudit)

    @property
    def ok(self) -> bool:
        return not self.stranded and not self.parked and self.deliveries.ok


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


def parked_reason(
    event: WebhookEvent, now: dt.datetime, broker_short: bool
) -> tuple[str, str] | None:
    """Return why nothing acts on a scheduled `event` within PARKED_AFTER, and the next step.

    `broker_short`: the broker holds fewer messages than the events `enqueued` that long.
    """
    status = event.status
    if status is EventStatus.PROCESSING and event.lease_expires_at is not None:
        ahead = event.lease_expires_at - now
        if ahead > PARKED_AFTER:
            return (
                f"processing under a lease until {event.lease_expires_at.isoformat()}, "
                f"{ahead.total_seconds():.0f} s ahead: if its worker is gone, nothing takes it "
                "back before then",
                "check that every worker runs with the current PROCESS_LEASE_SECONDS; once the "
                "lease lapses `rivya-hooks sweep` takes it back",
            )
    if status in (EventStatus.RECEIVED, EventStatus.FAILED) and event.next_attempt_at:
        overdue = now - event.next_attempt_at
        if overdue > PARKED_AFTER:
            return (
                f"{status.value}, due since {event.next_attempt_at.isoformat()} "
                f"({overdue.total_seconds():.0f} s overdue): no relay is publishing",
                "start the relay (the Procfile's `relay` role) or read its log",
            )
    enqueued_at = event.enqueued_at
    if (
        status is EventStatus.ENQUEUED
        and enqueued_at
        and broker_short
        and now - enqueued_at > PARKED_AFTER
    ):
        return (
            f"enqueued since {enqueued_at.isoformat()}, but the broker holds fewer "
            "messages than such events: the broker lost its message",
            f"`rivya-hooks events replay {event.event_id}` publishes it again",
        )
    return None


def audit(
    session: Session,
    now: dt.datetime,
    visibility_seconds: float,
    broker_messages: int | None = None,
    *,
    sweep_seconds: float,
    outbound_max_in_flight: int,
) -> AuditReport:
    """Check every unfinished event and outbound delivery; terminal ones need no check.

    `now` is the database's time; `broker_messages` what the broker holds (None: unknown,
    so lost messages are not looked for).
    """
    report = AuditReport(broker_messages=broker_messages)
    visibility = dt.timedelta(seconds=visibility_seconds)
    report.deliveries = audit_deliveries(
        session,
        now,
        Windows(visibility, dt.timedelta(seconds=sweep_seconds), outbound_max_in_flight),
    )
    waiting = int(
        session.scalar(
            select(func.count()).where(
                WebhookEvent.status == EventStatus.ENQUEUED,
                WebhookEvent.enqueued_at < now - PARKED_AFTER,
            )
        )
        or 0
    )
    broker_short = broker_messages is not None and broker_messages < waiting
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
            continue
        parked = parked_reason(event, now, broker_short)
        if parked is not None:
            report.parked.append(Parked(event.event_id, event.status.value, *parked))
    return report
