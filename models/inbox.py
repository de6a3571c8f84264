"""The inbox and outbox: how events enter (webhooks, reconcile, replay) and leave for the broker.

Every event is stored before anything else happens to it, as `received` with a due time;
the relay (tasks/relay.py) is the only process that publishes, and it marks rows `enqueued`
only after the broker took them. Writers never talk to the broker, so a broker outage
delays events without losing or stranding any.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Executable, bindparam, func, select, text, update
from sqlalchemy.orm import Session

from models.base import clip, utcnow
from models.db import dialect_insert, dialect_name
from models.events import (
    DUE_PREDICATE,
    UNFINISHED_STATUSES,
    EventSource,
    EventStatus,
    WebhookEvent,
)

# The channel the relay LISTENs on; writers NOTIFY it in the statement that stores events.
RELAY_CHANNEL = "rivyahooks_relay"
_COLUMNS = (
    "event_id",
    "event_type",
    "task_id",
    "api_version",
    "body",
    "headers",
    "source",
    "secret_fingerprint",
    "status",
    "status_reason",
    "attempts",
    "received_at",
    "next_attempt_at",
    "updated_at",
)


def event_row(
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
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Return the values of a new inbox row; a `received` one is due for the relay at once."""
    now = now or utcnow()
    return {
        "event_id": event_id,
        "event_type": clip(WebhookEvent.event_type, event_type),
        "task_id": task_id,
        "api_version": clip(WebhookEvent.api_version, api_version),
        "body": body,
        "headers": headers or {},
        "source": source,
        "secret_fingerprint": secret_fingerprint,
        "status": status,
        "status_reason": clip(WebhookEvent.status_reason, status_reason),
        "attempts": 0,
        "received_at": now,
        "next_attempt_at": now if status is EventStatus.RECEIVED else None,
        "updated_at": now,
    }


def _storing(executor: Session | Connection, values: Any) -> Executable:
    """Return the statement that stores rows and yields the ids of those that were new.

    ON CONFLICT DO NOTHING lets the unique event_id decide, inside the database, which of
    several concurrent deliveries wins: no read-then-write race, no error for the losers. On
    PostgreSQL the same statement wakes the relay (NOTIFY is sent at commit, so the relay
    never looks before the rows are visible, and repeated notifications in one transaction
    are delivered once).
    """
    insert = (
        dialect_insert(executor, WebhookEvent)
        .values(values)
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(WebhookEvent.event_id)
    )
    if dialect_name(executor) != "postgresql":
        return insert  # type: ignore[no-any-return]
    new = insert.cte("new")
    return select(new.c.event_id, func.pg_notify(RELAY_CHANNEL, "")).select_from(new)


# The single-row statement, built once per dialect and executed with parameters:
# constructing it on every delivery cost the receiver more CPU than the database round trip.
_ONE: dict[str, Executable] = {}


def store_event(executor: Session | Connection, row: dict[str, Any]) -> bool:
    """Store one event (see event_row) unless its id is known; return True if it was new.

    One statement, one round trip: on an autocommit connection (the receiver's) it is also
    the whole transaction.
    """
    dialect = dialect_name(executor)
    if dialect not in _ONE:
        _ONE[dialect] = _storing(executor, {name: bindparam(name) for name in _COLUMNS})
    return executor.execute(_ONE[dialect], row).first() is not None


def insert_event(executor: Session | Connection, **values: Any) -> bool:
    """Store one event made by event_row(**values); return True if it was new."""
    return store_event(executor, event_row(**values))


def store_events(executor: Session | Connection, rows: Sequence[dict[str, Any]]) -> list[str]:
    """Store many events with one multi-row INSERT; return the ids of those that were new."""
    if not rows:
        return []
    return [found[0] for found in executor.execute(_storing(executor, list(rows)))]


def wake_relay(executor: Session | Connection) -> None:
    """Tell a listening relay that rows became due (PostgreSQL; SQLite's relay polls)."""
    if dialect_name(executor) == "postgresql":
        executor.execute(select(func.pg_notify(RELAY_CHANNEL, "")))


# --- the relay's side --------------------------------------------------------------------


def due_events(connection: Connection, now: dt.datetime, limit: int) -> list[tuple[int, str]]:
    """Return (id, event_id) of events due for publishing, oldest due first.

    On PostgreSQL the rows stay locked until the transaction ends and rows another relay
    holds are skipped, so several relays share the work without publishing a row twice.
    """
    query = (
        select(WebhookEvent.id, WebhookEvent.event_id)
        .where(text(DUE_PREDICATE))
        .where(WebhookEvent.next_attempt_at <= now)
        .order_by(WebhookEvent.next_attempt_at)
        .limit(limit)
    )
    if connection.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return [(row[0], row[1]) for row in connection.execute(query)]


_MARK_ENQUEUED = (
    update(WebhookEvent)
    .where(WebhookEvent.id.in_(bindparam("ids", expanding=True)))
    .where(text(DUE_PREDICATE))
    .where(WebhookEvent.next_attempt_at <= bindparam("due"))
    .values(
        status=EventStatus.ENQUEUED,
        enqueued_at=bindparam("now"),
        next_attempt_at=None,
        updated_at=bindparam("now"),
    )
)


def mark_enqueued(connection: Connection, ids: list[int], due: dt.datetime) -> int:
    """Mark published rows `enqueued`; return how many moved.

    Compare-and-set: a row a worker already claimed (it got the message before this commit)
    keeps its newer state.
    """
    if not ids:
        return 0
    now = utcnow()
    result = connection.execute(_MARK_ENQUEUED, {"ids": ids, "due": due, "now": now})
    return int(result.rowcount)


def oldest_unfinished_event(session: Session) -> WebhookEvent | None:
    """Return the event waiting longest for processing (the figure to alert on)."""
    return session.scalars(
        select(WebhookEvent)
        .where(WebhookEvent.status.in_(UNFINISHED_STATUSES))
        .order_by(WebhookEvent.received_at)
        .limit(1)
    ).first()
