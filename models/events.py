"""The inbox: every genuine webhook event, stored before it is acknowledged."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Enum,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    Update,
    text,
    update,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId, UTCDateTime, clip, utcnow
from models.sealed import SealedBytes, SealedJSON


class EventStatus(enum.StrEnum):
    RECEIVED = "received"  # committed; the relay publishes it once next_attempt_at is due
    ENQUEUED = "enqueued"  # the broker took it
    PROCESSING = "processing"  # a worker holds a claim until lease_expires_at
    PROCESSED = "processed"
    IGNORED = "ignored"  # genuine but nothing to do (test event, another account's task)
    FAILED = "failed"  # the last attempt failed; the relay publishes it at next_attempt_at
    DEAD = "dead"  # gave up: permanent error or attempts exhausted; replay to retry
    QUARANTINED = "quarantined"  # verified, but this code cannot interpret it


class EventSource(enum.StrEnum):
    WEBHOOK = "webhook"
    RECONCILE = "reconcile"
    REPLAY = "replay"


# Every move an event can make. Each one is written as a compare-and-set (an UPDATE whose
# WHERE names the status it moves from), so two processes can never both make a move.
#
#   received --relay--> enqueued --claim--> processing --finish--> processed | ignored | dead
#      ^                   |                 |   \--failure--> failed --relay, when due--> enqueued
#      |                   |                 \--lease expired (sweeper)--> failed | dead
#      +-- sweeper: the message was lost (enqueued past the visibility window)
#   a claim also takes over `processing` once its lease expired
#   replay: processed | ignored | dead | quarantined | failed | enqueued --> received
ALLOWED_TRANSITIONS: dict[EventStatus, frozenset[EventStatus]] = {
    # RECEIVED -> PROCESSING: a worker may claim before the relay has marked the row.
    EventStatus.RECEIVED: frozenset(
        {EventStatus.ENQUEUED, EventStatus.PROCESSING, EventStatus.DEAD}
    ),
    EventStatus.ENQUEUED: frozenset(
        {EventStatus.PROCESSING, EventStatus.RECEIVED, EventStatus.DEAD}
    ),
    # PROCESSING -> PROCESSING: a new claim once the previous holder's lease lapsed.
    EventStatus.PROCESSING: frozenset(
        {
            EventStatus.PROCESSING,
            EventStatus.PROCESSED,
            EventStatus.IGNORED,
            EventStatus.FAILED,
            EventStatus.DEAD,
        }
    ),
    EventStatus.FAILED: frozenset(
        {EventStatus.ENQUEUED, EventStatus.PROCESSING, EventStatus.DEAD, EventStatus.RECEIVED}
    ),
    EventStatus.PROCESSED: frozenset({EventStatus.RECEIVED}),
    EventStatus.IGNORED: frozenset({EventStatus.RECEIVED}),
    EventStatus.DEAD: frozenset({EventStatus.RECEIVED}),
    EventStatus.QUARANTINED: frozenset({EventStatus.RECEIVED}),
}
UNFINISHED_STATUSES = frozenset(
    {EventStatus.RECEIVED, EventStatus.ENQUEUED, EventStatus.PROCESSING, EventStatus.FAILED}
)
TERMINAL_STATUSES = frozenset(
    {EventStatus.PROCESSED, EventStatus.IGNORED, EventStatus.DEAD, EventStatus.QUARANTINED}
)
# What the gauges and the console count: events still on their way, and those waiting for
# an operator.
WATCHED_STATUSES = tuple(
    sorted({*UNFINISHED_STATUSES, EventStatus.DEAD, EventStatus.QUARANTINED}, key=str)
)
# What the relay publishes (once next_attempt_at is due). Written out as SQL, not bound
# parameters, so that PostgreSQL can match the partial index below to the relay's query.
DUE_PREDICATE = "status IN ('received', 'failed')"


def sources_of(target: EventStatus) -> frozenset[EventStatus]:
    """Return the statuses an event may move to `target` from."""
    return frozenset(s for s, targets in ALLOWED_TRANSITIONS.items() if target in targets)


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    # Stored as plain strings with a CHECK: a new status is a migration, not a type change.
    return Enum(
        cls,
        name=name,
        native_enum=False,
        length=16,
        validate_strings=True,
        values_callable=lambda e: [m.value for m in e],
    )


class WebhookEvent(Base):
    __tablename__ = "webhook_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # Rivya's event id; the unique constraint is what deduplicates concurrent deliveries.
    event_id: Mapped[str] = mapped_column(String(255), unique=True)
    event_type: Mapped[str | None] = mapped_column(String(100))
    task_id: Mapped[str | None] = mapped_column(String(255), index=True)
    api_version: Mapped[str | None] = mapped_column(String(32))
    # The exact bytes that were verified, so a replay re-runs what Rivya actually sent.
    # Both sealed under DATA_ENCRYPTION_KEYS when it is set: bodies carry what end users
    # typed (prompts), the first thing a leaked backup would expose.
    body: Mapped[bytes] = mapped_column(SealedBytes("webhook_events.body"))
    headers: Mapped[dict[str, Any]] = mapped_column(
        SealedJSON("webhook_events.headers"), default=dict
    )
    source: Mapped[EventSource] = mapped_column(_enum(EventSource, "event_source"))
    # Which configured secret verified it, by fingerprint: never the secret itself.
    secret_fingerprint: Mapped[str | None] = mapped_column(String(16))
    # The W3C traceparent of the delivery's trace (only when tracing is on), so whoever
    # publishes the event later continues the receiver's trace.
    traceparent: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[EventStatus] = mapped_column(_enum(EventStatus, "event_status"))
    status_reason: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When the relay should publish it (`received` and `failed` only): the outbox's clock.
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    enqueued_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # The claim of the worker running it (`processing` only): a finish or a failure is
    # written only by the holder of this token, and the claim lapses at lease_expires_at.
    claim_token: Mapped[str | None] = mapped_column(String(32))
    lease_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (
        Index("ix_webhook_events_status_updated_at", "status", "updated_at"),
        # Only the rows the relay still has to publish: small however large the inbox grows.
        Index(
            "ix_webhook_events_due",
            "next_attempt_at",
            postgresql_where=text(DUE_PREDICATE),
            sqlite_where=text(DUE_PREDICATE),
        ),
    )

    def __repr__(self) -> str:
        return f"<WebhookEvent {self.event_id} {self.status}>"


class AttemptOutcome(enum.StrEnum):
    PROCESSED = "processed"
    IGNORED = "ignored"
    FAILED = "failed"  # a retry is scheduled at retry_at
    DEAD = "dead"
    # The lease ran out before the worker finished: it was killed or hung. Written by the
    # sweeper, or by the next claim.
    EXPIRED = "expired"


class EventAttempt(Base):
    """One attempt at processing an event: the timeline `events show` and the console read."""

    __tablename__ = "event_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("webhook_events.event_id", ondelete="CASCADE"))
    # 1, 2, ... over the event's whole life; a replay resets the event's budget
    # (`attempts`), not this number.
    number: Mapped[int]
    # host:pid of the worker process, to find its logs.
    worker: Mapped[str] = mapped_column(String(255))
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # None while the attempt runs.
    outcome: Mapped[AttemptOutcome | None] = mapped_column(_enum(AttemptOutcome, "attempt_outcome"))
    # Exception type and message (the traceback is in the worker's log).
    error: Mapped[str | None] = mapped_column(Text)
    retry_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("event_id", "number", name="uq_event_attempts_event_number"),
    )

    def __repr__(self) -> str:
        return f"<EventAttempt {self.event_id}#{self.number} {self.outcome}>"


def move(target: EventStatus, *conditions: ColumnElement[bool], **values: Any) -> Update:
    """Return the compare-and-set UPDATE moving the events matching `conditions` to `target`.

    Only rows in a status ALLOWED_TRANSITIONS lets reach `target` move; the caller adds what
    else must still hold (the claim token, a due time), and checks the row count (or the
    RETURNING rows): zero means another process moved the event first, and its move stands.
    """
    values.setdefault("updated_at", utcnow())
    return (
        update(WebhookEvent)
        .where(WebhookEvent.status.in_(sources_of(target)), *conditions)
        .values(status=target, **values)
        .execution_options(synchronize_session=False)
    )


def finish_attempt(
    event_id: str,
    outcome: AttemptOutcome,
    error: str | None,
    now: dt.datetime,
    *,
    retry_at: dt.datetime | None = None,
    number: int | None = None,
) -> Update:
    """Return the UPDATE that ends the event's open attempt (the one numbered, or any)."""
    statement = update(EventAttempt).where(
        EventAttempt.event_id == event_id, EventAttempt.finished_at.is_(None)
    )
    if number is not None:
        statement = statement.where(EventAttempt.number == number)
    return statement.values(
        finished_at=now,
        outcome=outcome,
        error=clip(EventAttempt.error, error),
        retry_at=retry_at,
    )
