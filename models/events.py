"""The inbox: every genuine webhook event, stored before it is acknowledged."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import JSON, Enum, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId, UTCDateTime, utcnow


class EventStatus(enum.StrEnum):
    RECEIVED = "received"  # committed, not yet handed to the broker
    ENQUEUED = "enqueued"  # handed to the broker
    PROCESSING = "processing"  # a worker has it
    PROCESSED = "processed"
    IGNORED = "ignored"  # genuine but nothing to do (test event, another account's task)
    FAILED = "failed"  # the last attempt failed; a retry is scheduled
    DEAD = "dead"  # gave up: permanent error or attempts exhausted; replay to retry
    QUARANTINED = "quarantined"  # verified, but this code cannot interpret it


class EventSource(enum.StrEnum):
    WEBHOOK = "webhook"
    RECONCILE = "reconcile"
    REPLAY = "replay"


S = EventStatus
# Terminal states leave only by an operator's replay, which re-enqueues.
ALLOWED_TRANSITIONS: dict[EventStatus, frozenset[EventStatus]] = {
    S.RECEIVED: frozenset({S.ENQUEUED, S.PROCESSING}),
    # ENQUEUED -> RECEIVED: the receiver writes `enqueued` with the row and moves it back
    # when the publish that follows the commit fails.
    S.ENQUEUED: frozenset({S.ENQUEUED, S.PROCESSING, S.RECEIVED}),
    # PROCESSING -> PROCESSING is a redelivery after a worker died mid-task;
    # PROCESSING -> ENQUEUED is the sweeper rescuing an event past the visibility window.
    S.PROCESSING: frozenset({S.PROCESSING, S.PROCESSED, S.IGNORED, S.FAILED, S.DEAD, S.ENQUEUED}),
    S.FAILED: frozenset({S.PROCESSING, S.ENQUEUED, S.DEAD}),
    S.PROCESSED: frozenset({S.ENQUEUED}),
    S.IGNORED: frozenset({S.ENQUEUED}),
    S.DEAD: frozenset({S.ENQUEUED}),
    S.QUARANTINED: frozenset({S.ENQUEUED}),
}
UNFINISHED_STATUSES = frozenset({S.RECEIVED, S.ENQUEUED, S.PROCESSING, S.FAILED})


class InvalidTransitionError(Exception):
    """A status change the state machine does not allow."""


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
    body: Mapped[bytes] = mapped_column(LargeBinary)
    headers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
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
    enqueued_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (Index("ix_webhook_events_status_updated_at", "status", "updated_at"),)

    def transition(self, new: EventStatus, reason: str | None = None) -> None:
        """Move to `new`, or raise InvalidTransitionError if the state machine forbids it."""
        if new not in ALLOWED_TRANSITIONS[self.status]:
            raise InvalidTransitionError(
                f"event {self.event_id}: {self.status} -> {new} not allowed"
            )
        self.status = new
        self.status_reason = reason
        self.updated_at = utcnow()

    def __repr__(self) -> str:
        return f"<WebhookEvent {self.event_id} {self.status}>"
