"""The outbound half of the audit: every delivery is delivered, scheduled, or given up.

Scheduled means something acts on it without an operator:

- `pending` with a due time: the relay publishes it then (while its app is disabled it is
  held until an operator enables the app);
- `enqueued` within the visibility window: a sending worker will take the message;
- `sending` under a lease, or one that lapsed less than a sweep interval ago: the worker
  holds it, or the sweeper's next run takes it back.

A `failed` delivery is given up and must say why. Anything else is stranded: nothing will
act on it by itself. A due `pending` delivery of an enabled app with room in flight
(OUTBOUND_MAX_IN_FLIGHT) that waited longer than PARKED_AFTER is parked: the relay should
have published it.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.apps import App
from models.outbound import IN_FLIGHT_STATUSES, OPEN_STATUSES, DeliveryStatus, OutboundDelivery

# Once a fault is over the relay publishes every due delivery within this (as for events).
PARKED_AFTER = dt.timedelta(minutes=2)


@dataclass(frozen=True)
class StrandedDelivery:
    delivery_id: int
    message_id: str
    app: str
    status: str
    why: str


@dataclass(frozen=True)
class ParkedDelivery:
    delivery_id: int
    message_id: str
    app: str
    status: str
    why: str
    next_step: str


@dataclass
class DeliveriesAudit:
    checked: int = 0  # open deliveries, and failed ones without a reason
    open: Counter[str] = field(default_factory=Counter)
    stranded: list[StrandedDelivery] = field(default_factory=list)
    parked: list[ParkedDelivery] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.stranded and not self.parked


@dataclass(frozen=True)
class Windows:
    """How long each stage may last before nothing is acting on a delivery any more."""

    visibility: dt.timedelta  # TASK_VISIBILITY_TIMEOUT_SECONDS
    sweep: dt.timedelta  # SWEEP_INTERVAL_SECONDS
    max_in_flight: int  # OUTBOUND_MAX_IN_FLIGHT


def stranded_reason(delivery: OutboundDelivery, now: dt.datetime, windows: Windows) -> str | None:
    """Return why nothing will act on `delivery` by itself, or None if something will."""
    status = delivery.status
    if status is DeliveryStatus.PENDING and delivery.next_attempt_at is None:
        return "pending without a due time: the relay will never publish it"
    if status is DeliveryStatus.ENQUEUED:
        if delivery.enqueued_at is None:
            return "enqueued without an enqueued time: the sweeper never takes it back"
        if delivery.enqueued_at < now - windows.visibility:
            return (
                f"enqueued since {delivery.enqueued_at.isoformat()}, longer than the "
                "visibility window: the message is presumed lost (the sweeper makes it due again)"
            )
    if status is DeliveryStatus.SENDING:
        if delivery.lease_until is None:
            return "sending without a lease: no worker holds it and no lease will lapse"
        if delivery.lease_until < now - windows.sweep:
            return (
                f"sending, but its lease expired at {delivery.lease_until.isoformat()}, more "
                "than a sweep interval ago: the worker died and no sweeper took it back"
            )
    if status is DeliveryStatus.FAILED and not delivery.reason:
        return "given up without a reason: an operator cannot tell why it was not delivered"
    return None


def parked_reason(
    delivery: OutboundDelivery, now: dt.datetime, room: bool
) -> tuple[str, str] | None:
    """Return why the relay has not published a due `delivery`, and the next step.

    `room`: its app is enabled and has fewer than OUTBOUND_MAX_IN_FLIGHT deliveries in
    flight, so the relay would publish it (a full app waits for its endpoint, not a relay).
    """
    due = delivery.next_attempt_at
    if delivery.status is not DeliveryStatus.PENDING or due is None or not room:
        return None
    overdue = now - due
    if overdue <= PARKED_AFTER:
        return None
    return (
        f"pending, due since {due.isoformat()} ({overdue.total_seconds():.0f} s overdue) "
        "with its app enabled and room in flight: no relay is publishing",
        "start the relay (the Procfile's `relay` role) or read its log",
    )


def audit_deliveries(session: Session, now: dt.datetime, windows: Windows) -> DeliveriesAudit:
    """Check every open delivery and every failed one without a reason.

    Delivered ones and failed ones with a reason need no check; the second are found by
    their missing reason, so the finished majority is never read row by row.
    """
    report = DeliveriesAudit()
    in_flight = dict(
        session.execute(
            select(OutboundDelivery.app_id, func.count())
            .where(OutboundDelivery.status.in_(IN_FLIGHT_STATUSES))
            .group_by(OutboundDelivery.app_id)
        ).all()
    )
    apps = {
        app_id: (name, enabled)
        for app_id, name, enabled in session.execute(select(App.id, App.name, App.enabled))
    }
    query = (
        select(OutboundDelivery)
        .where(
            OutboundDelivery.status.in_(OPEN_STATUSES)
            | (
                (OutboundDelivery.status == DeliveryStatus.FAILED)
                & (func.coalesce(OutboundDelivery.reason, "") == "")
            )
        )
        .order_by(OutboundDelivery.id)
        .execution_options(yield_per=1000)
    )
    for delivery in session.scalars(query):
        name, enabled = apps.get(delivery.app_id, (delivery.app_id, False))
        status = delivery.status.value
        report.checked += 1
        if delivery.status in OPEN_STATUSES:
            report.open[status] += 1
        ids = (delivery.id, delivery.message_id, name, status)
        why = stranded_reason(delivery, now, windows)
        if why is not None:
            report.stranded.append(StrandedDelivery(*ids, why))
            continue
        room = enabled and in_flight.get(delivery.app_id, 0) < windows.max_in_flight
        parked = parked_reason(delivery, now, room)
        if parked is not None:
            report.parked.append(ParkedDelivery(*ids, *parked))
    return report
