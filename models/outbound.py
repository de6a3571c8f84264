"""Messages pushed to apps, and their deliveries: the outbox of outbound webhooks.

A message is one change of a generation's final state (`result.ready` or `result.failed`),
its body fixed when it is made, so every attempt sends the same bytes under the same
`webhook-id`. Each app subscribed to its type gets one delivery row, which moves

    pending ──relay──▶ enqueued ──worker──▶ sending ──▶ delivered
       ▲                                      │
       └────────── the next retry ◀───────────┤
                                              └──▶ failed (given up, with its reason)

only by compare-and-set, like inbound events (models/events.py). The relay publishes due
`pending` rows, at most OUTBOUND_MAX_IN_FLIGHT per app, so a slow or dead endpoint holds at
most that many of the sending workers. A `sending` row whose worker vanished is taken back
when its lease lapses; an `enqueued` one whose message the broker lost, after the
visibility window or when the broker is seen to have lost it.
"""

from __future__ import annotations

import datetime as dt
import enum
import secrets
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    and_,
    func,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from models.apps import App, disable
from models.base import Base, BigId, UTCDateTime, utcnow
from models.db import dialect_insert
from models.generations import Generation
from models.sealed import SealedBytes

# The first 1 KiB of an endpoint's answer is kept with each attempt: enough to see why.
RESPONSE_EXCERPT_BYTES = 1024
# The fan-out's cursor is the one row of outbound_cursor.
CURSOR_ID = 1


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"  # due at next_attempt_at; the relay publishes it
    ENQUEUED = "enqueued"  # in the broker
    SENDING = "sending"  # a worker is posting it, under a lease
    DELIVERED = "delivered"  # the endpoint answered 2xx
    FAILED = "failed"  # given up: attempts used up, the app disabled, or 410 Gone


# Where a delivery may move from, by target: the one table of allowed moves.
ALLOWED_FROM: dict[DeliveryStatus, frozenset[DeliveryStatus]] = {
    DeliveryStatus.PENDING: frozenset(
        {
            DeliveryStatus.ENQUEUED,
            DeliveryStatus.SENDING,
            DeliveryStatus.FAILED,
            DeliveryStatus.DELIVERED,
        }
    ),
    DeliveryStatus.ENQUEUED: frozenset({DeliveryStatus.PENDING}),
    # From pending too: a worker may get the message before the relay's mark commits, and
    # a run that got a 2xx takes its app's next due delivery itself (tasks/outbound_delivery.py).
    DeliveryStatus.SENDING: frozenset({DeliveryStatus.ENQUEUED, DeliveryStatus.PENDING}),
    DeliveryStatus.DELIVERED: frozenset({DeliveryStatus.SENDING}),
    DeliveryStatus.FAILED: frozenset(
        {DeliveryStatus.PENDING, DeliveryStatus.ENQUEUED, DeliveryStatus.SENDING}
    ),
}
OPEN_STATUSES = (DeliveryStatus.PENDING, DeliveryStatus.ENQUEUED, DeliveryStatus.SENDING)
IN_FLIGHT_STATUSES = (DeliveryStatus.ENQUEUED, DeliveryStatus.SENDING)


def _enum(kind: type[enum.StrEnum], name: str) -> Enum:
    return Enum(
        kind,
        name=name,
        native_enum=False,
        length=16,
        values_callable=lambda e: [m.value for m in e],
    )


class OutboundMessage(Base):
    __tablename__ = "outbound_messages"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    type: Mapped[str] = mapped_column(String(32))
    task_id: Mapped[str] = mapped_column(String(255), index=True)
    # The generation's feed position when the message was made: messages follow the feed.
    feed_position: Mapped[int] = mapped_column(BigInteger)
    # The exact bytes every attempt sends (the result record holds end users' prompts' results).
    payload: Mapped[bytes] = mapped_column(SealedBytes("outbound_messages.payload"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class OutboundDelivery(Base):
    __tablename__ = "outbound_deliveries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[str] = mapped_column(ForeignKey("outbound_messages.id", ondelete="CASCADE"))
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    status: Mapped[DeliveryStatus] = mapped_column(_enum(DeliveryStatus, "delivery_status"))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    enqueued_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(300))
    # Why it was given up (FAILED), in words an operator can act on.
    reason: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    message: Mapped[OutboundMessage] = relationship()
    app: Mapped[App] = relationship()

    __table_args__ = (
        UniqueConstraint("message_id", "app_id", name="uq_outbound_deliveries_message_app"),
        Index("ix_outbound_deliveries_status_due", "status", "next_attempt_at"),
        Index("ix_outbound_deliveries_app_status", "app_id", "status"),
        Index("ix_outbound_deliveries_finished_at", "finished_at"),
    )


class OutboundAttempt(Base):
    """One POST to an endpoint: when, what it answered, how long it took."""

    __tablename__ = "outbound_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("outbound_deliveries.id", ondelete="CASCADE"), index=True
    )
    app_id: Mapped[str] = mapped_column(String(32))
    number: Mapped[int] = mapped_column(Integer)
    attempted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int] = mapped_column(Integer)
    response_excerpt: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(String(300))
    # delivered, retry (scheduled again), failed (given up)
    outcome: Mapped[str] = mapped_column(String(16))

    __table_args__ = (Index("ix_outbound_attempts_app_time", "app_id", "attempted_at"),)


class OutboundCursor(Base):
    """One row: the last feed position the fan-out has turned into messages."""

    __tablename__ = "outbound_cursor"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger)


def new_message_id() -> str:
    return "msg_" + secrets.token_hex(12)


def new_delivery(message_id: str, app_id: str, now: dt.datetime) -> OutboundDelivery:
    """Return a delivery of the message to the app, due now."""
    return OutboundDelivery(
        message_id=message_id,
        app_id=app_id,
        status=DeliveryStatus.PENDING,
        attempts=0,
        next_attempt_at=now,
        created_at=now,
        updated_at=now,
    )


def move(target: DeliveryStatus, *where: ColumnElement[bool], **values: Any) -> Any:
    """Return the UPDATE that moves matching deliveries to `target` from an allowed status."""
    return (
        update(OutboundDelivery)
        .where(OutboundDelivery.status.in_(sorted(ALLOWED_FROM[target])), *where)
        .values(status=target, **values)
        .execution_options(synchronize_session=False)
    )


def due_deliveries(
    session: Session, now: dt.datetime, per_app: int, limit: int
) -> list[tuple[int, str]]:
    """Return (delivery id, app id) of due pending deliveries, at most `per_app` in flight.

    Ranked within each enabled app by due time, so the oldest go first and one app's
    backlog never fills a batch meant for all.
    """
    in_flight = (
        select(OutboundDelivery.app_id, func.count().label("n"))
        .where(OutboundDelivery.status.in_(IN_FLIGHT_STATUSES))
        .group_by(OutboundDelivery.app_id)
        .subquery()
    )
    rank = (
        func.row_number()
        .over(
            partition_by=OutboundDelivery.app_id,
            order_by=(OutboundDelivery.next_attempt_at, OutboundDelivery.id),
        )
        .label("rank")
    )
    ranked = (
        select(OutboundDelivery.id, OutboundDelivery.app_id, rank)
        .join(App, and_(App.id == OutboundDelivery.app_id, App.enabled.is_(True)))
        .where(
            OutboundDelivery.status == DeliveryStatus.PENDING,
            OutboundDelivery.next_attempt_at <= now,
        )
        .subquery()
    )
    rows = session.execute(
        select(ranked.c.id, ranked.c.app_id)
        .outerjoin(in_flight, in_flight.c.app_id == ranked.c.app_id)
        .where(ranked.c.rank <= per_app - func.coalesce(in_flight.c.n, 0))
        .order_by(ranked.c.id)
        .limit(limit)
    ).all()
    return [(int(pk), str(app_id)) for pk, app_id in rows]


def mark_enqueued(session: Session, ids: list[int], now: dt.datetime) -> list[int]:
    """Move the pending ones of `ids` to enqueued; return the ids this call moved."""
    if not ids:
        return []
    moved = session.scalars(
        move(
            DeliveryStatus.ENQUEUED,
            OutboundDelivery.id.in_(ids),
            OutboundDelivery.status == DeliveryStatus.PENDING,
            enqueued_at=now,
            updated_at=now,
        ).returning(OutboundDelivery.id)
    )
    return sorted(int(pk) for pk in moved)


def take_back_lost(session: Session, now: dt.datetime, enqueued_before: dt.datetime) -> int:
    """Make due again what the broker lost and what a vanished worker was sending."""
    lost = session.execute(
        move(
            DeliveryStatus.PENDING,
            OutboundDelivery.status == DeliveryStatus.ENQUEUED,
            OutboundDelivery.enqueued_at <= enqueued_before,
            next_attempt_at=now,
            updated_at=now,
        )
    ).rowcount  # type: ignore[attr-defined]
    lapsed = session.execute(
        move(
            DeliveryStatus.PENDING,
            OutboundDelivery.status == DeliveryStatus.SENDING,
            OutboundDelivery.lease_until < now,
            next_attempt_at=now,
            lease_until=None,
            last_error="the sending worker was lost before it recorded the attempt",
            updated_at=now,
        )
    ).rowcount  # type: ignore[attr-defined]
    return int(lost) + int(lapsed)


def give_up_open(session: Session, app_id: str, reason: str, now: dt.datetime) -> int:
    """Give up every delivery of the app not yet being sent (it was disabled)."""
    result = session.execute(
        move(
            DeliveryStatus.FAILED,
            OutboundDelivery.app_id == app_id,
            OutboundDelivery.status != DeliveryStatus.SENDING,
            reason=reason[:300],
            next_attempt_at=None,
            finished_at=now,
            updated_at=now,
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def disable_app(session: Session, app: App, reason: str, now: dt.datetime) -> int:
    """Disable the app and give up what it has not received; return how many were given up."""
    disable(app, reason, now)
    return give_up_open(session, app.id, f"app disabled: {reason}", now)


def backlog_by_app(session: Session) -> dict[str, int]:
    """Return how many deliveries each app has not finished (pending, enqueued, sending)."""
    rows = session.execute(
        select(OutboundDelivery.app_id, func.count())
        .where(OutboundDelivery.status.in_(OPEN_STATUSES))
        .group_by(OutboundDelivery.app_id)
    ).all()
    return {str(app_id): int(count) for app_id, count in rows}


def oldest_due_by_app(session: Session, now: dt.datetime) -> dict[str, dt.datetime]:
    """Return each app's earliest due time among its pending deliveries already due."""
    rows = session.execute(
        select(OutboundDelivery.app_id, func.min(OutboundDelivery.next_attempt_at))
        .where(
            OutboundDelivery.status == DeliveryStatus.PENDING,
            OutboundDelivery.next_attempt_at <= now,
        )
        .group_by(OutboundDelivery.app_id)
    ).all()
    return {str(app_id): due for app_id, due in rows if due is not None}


def recent_attempts(session: Session, app_id: str, limit: int = 20) -> list[OutboundAttempt]:
    return list(
        session.scalars(
            select(OutboundAttempt)
            .where(OutboundAttempt.app_id == app_id)
            .order_by(OutboundAttempt.attempted_at.desc(), OutboundAttempt.id.desc())
            .limit(limit)
        )
    )


def skip_history(session: Session) -> None:
    """Move the fan-out's cursor to the feed's end: apps added now get what changes from now."""
    end = session.scalar(select(func.coalesce(func.max(Generation.feed_position), 0)))
    session.execute(
        dialect_insert(session, OutboundCursor)
        .values(id=CURSOR_ID, position=end)
        .on_conflict_do_update(index_elements=["id"], set_={"position": end})
    )


def replay(
    session: Session,
    app: App,
    *,
    since: dt.datetime | None,
    failed_only: bool,
    now: dt.datetime,
    dry_run: bool = False,
) -> int:
    """Make the app's messages since `since` due again; return how many.

    Given-up (and, unless `failed_only`, delivered) deliveries become pending with fresh
    attempts; messages of the app's types it never had a delivery for (made while it was
    disabled) get one, unless `failed_only`. Deliveries still open are left as they are.
    """
    messages = select(OutboundMessage.id).where(OutboundMessage.type.in_(list(app.events)))
    if since is not None:
        messages = messages.where(OutboundMessage.created_at >= since)
    again = (
        [DeliveryStatus.FAILED]
        if failed_only
        else [
            DeliveryStatus.FAILED,
            DeliveryStatus.DELIVERED,
        ]
    )
    where = (
        OutboundDelivery.app_id == app.id,
        OutboundDelivery.status.in_(again),
        OutboundDelivery.message_id.in_(messages),
    )
    missing: list[str] = []
    if not failed_only:
        had = select(OutboundDelivery.message_id).where(OutboundDelivery.app_id == app.id)
        missing = list(session.scalars(messages.where(OutboundMessage.id.not_in(had))))
    if dry_run:
        count = session.scalar(select(func.count()).select_from(OutboundDelivery).where(*where))
        return int(count or 0) + len(missing)
    moved = session.execute(
        move(
            DeliveryStatus.PENDING,
            *where,
            attempts=0,
            next_attempt_at=now,
            reason=None,
            finished_at=None,
            updated_at=now,
        )
    ).rowcount  # type: ignore[attr-defined]
    for message_id in missing:
        session.add(new_delivery(message_id, app.id, now))
    return int(moved) + len(missing)
