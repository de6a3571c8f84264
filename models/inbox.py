"""The inbox path every event takes, whether a webhook delivered it or the reconciler found it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Connection, Insert, bindparam, cast, exists, select, update
from sqlalchemy.orm import Session

from models.base import utcnow
from models.db import dialect_insert, dialect_name
from models.events import UNFINISHED_STATUSES, EventSource, EventStatus, WebhookEvent
from models.tombstones import EventTombstone


def _insert_statement(executor: Session | Connection) -> Insert:
    # Built once per dialect and executed with parameters: constructing a fresh statement on
    # every delivery cost the receiver more CPU than the database round trip itself.
    dialect = dialect_name(executor)
    if dialect not in _INSERTS:
        # INSERT ... SELECT <parameters> WHERE NOT EXISTS (tombstone): one statement, so a
        # purged event's redelivery is a duplicate like any other, with no extra round trip.
        columns = [c for c in WebhookEvent.__table__.c if c.name != "id"]
        values = select(*[_parameter(c, dialect) for c in columns]).where(
            ~exists().where(EventTombstone.event_id == bindparam("event_id"))
        )
        _INSERTS[dialect] = (
            dialect_insert(executor, WebhookEvent)
            .from_select(columns, values)
            .on_conflict_do_nothing(index_elements=["event_id"])
            .returning(WebhookEvent.id)
        )
    return _INSERTS[dialect]


def _parameter(column: ColumnElement[Any], dialect: str) -> Any:
    # A parameter in a SELECT list has no column to take its type from: PostgreSQL needs
    # the type spelled out (CAST), SQLite must not get one (CAST AS JSON there is numeric).
    parameter = bindparam(column.name, type_=column.type)
    return cast(parameter, column.type) if dialect == "postgresql" else parameter


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
    traceparent: str | None = None,
    status_reason: str | None = None,
) -> bool:
    """Insert the event unless its id is stored or purged; return True if this call stored it.

    The unique constraint on event_id decides, inside the database, which of several
    concurrent deliveries wins: no read-then-write race, no exception for the losers. A
    tombstone (models/tombstones.py) makes the insert select no row at all.
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
        "traceparent": traceparent,
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
    # Core execution on the session's own connection (same transaction): the ORM's bulk
    # insert path does not take INSERT ... SELECT.
    connection = session.connection() if isinstance(session, Session) else session
    result = connection.execute(_insert_statement(connection), parameters)
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
