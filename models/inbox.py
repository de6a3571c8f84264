"""The inbox path every event takes, whether a webhook delivered it or the reconciler found it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Insert, bindparam, select, update
from sqlalchemy.orm import Session

from models.base import utcnow
from models.db import dialect_insert, dialect_name
from models.events import UNFINISHED_STATUSES, EventSource, EventStatus, WebhookEvent


def _insert_statement(executor: Session | Connection) -> Insert:
    # Built once per dialect and executed with parameters: constructing a fresh statement on
    # every delivery cost the receiver more CPU than the database round trip itself.
    dialect = dialect_name(executor)
    if dialect not in _INSERTS:
        _INSERTS[dialect] = (
            dialect_insert(executor, WebhookEvent)
            .on_conflict_do_nothing(index_elements=["event_id"])
            .returning(WebhookEvent.id)
        )
    return _INSERTS[dialect]


_INSERTS: dict[str, Insert] = {}


def insert_event(
    session: Session | Connection,
    *,
    event_id: str,
    body: bytes,
    source: EventSource,
    status: EventStatus = EventStatus.RECEIVED,
    event_type: str | None = None,
    task_id: str | None = None,
    api_version: str | None = None,
    headers: dict[str, Any] | None = None,
    secret_fingerprint: str | None = None,
    status_reason: str | None = None,
) -> bool:
    """Insert the event unless its id is already stored; return True if this call stored it.

    The unique constraint on event_id decides, inside the database, which of several
    concurrent deliveries wins: no read-then-write race, no exception for the losers.
    Works on a Session or a bare Connection (the receiver's, which skips the ORM's cost).
    """
    now = utcnow()
    parameters = {
        "event_id": event_id,
        "event_type": event_type,
        "task_id": task_id,
        "api_version": api_version,
        "body": body,
        "headers": headers or {},
        "source": source,
        "secret_fingerprint": secret_fingerprint,
        "status": status,
        "status_reason": status_reason,
        "attempts": 0,
        "received_at": now,
        "enqueued_at": now if status is EventStatus.ENQUEUED else None,
        "started_at": None,
        "finished_at": None,
        "last_error": None,
        "updated_at": now,
    }
    result = session.execute(_insert_statement(session), parameters)
    return result.scalar_one_or_none() is not None


def mark_enqueued(session: Session | Connection, event_ids: list[str]) -> int:
    """Record that events were handed to the broker; return how many rows changed.

    Only rows still `received` move: a worker may already have picked the message up and set
    `processing`, and that later state must win.
    """
    if not event_ids:
        return 0
    now = utcnow()
    result = session.execute(
        update(WebhookEvent)
        .where(WebhookEvent.event_id.in_(event_ids))
        .where(WebhookEvent.status == EventStatus.RECEIVED)
        .values(status=EventStatus.ENQUEUED, enqueued_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


_UNSENT = (
    update(WebhookEvent)
    .where(WebhookEvent.event_id == bindparam("unsent_id"))
    .where(WebhookEvent.status == EventStatus.ENQUEUED)
    .values(status=EventStatus.RECEIVED, enqueued_at=None, updated_at=bindparam("now"))
)


def mark_unsent(executor: Session | Connection, event_id: str) -> None:
    """Undo an optimistic `enqueued` after the publish failed, for the sweeper to retry."""
    executor.execute(_UNSENT, {"unsent_id": event_id, "now": utcnow()})


def oldest_unfinished_event(session: Session) -> WebhookEvent | None:
    """Return the event waiting longest for processing (the figure to alert on)."""
    return session.scalars(
        select(WebhookEvent)
        .where(WebhookEvent.status.in_(UNFINISHED_STATUSES))
        .order_by(WebhookEvent.received_at)
        .limit(1)
    ).first()
