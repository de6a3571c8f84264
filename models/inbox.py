"""The inbox and outbox: how events enter (webhooks, reconcile, replay) and leave for the broker.

Every event is stored before anything else happens to it, as `received` with a due time;
the relay (tasks/relay.py) is the only process that publishes, and it marks rows `enqueued`
only after the broker took them. Writers never talk to the broker, so a broker outage
delays events without losing or stranding any.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    Connection,
    bindparam,
    cast,
    func,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, defer
from sqlalchemy.pool import NullPool

from models.base import clip, utcnow
from models.clock import database_now
from models.db import dialect_insert, dialect_name, make_engine
from models.event_keys import EventKey
from models.events import (
    DUE_PREDICATE,
    UNFINISHED_STATUSES,
    WATCHED_STATUSES,
    EventSource,
    EventStatus,
    WebhookEvent,
)
from models.thread_connections import ThreadConnections

# The channel the relay LISTENs on; writers NOTIFY it in the statement that stores events.
RELAY_CHANNEL = "rivyahooks_relay"
# The receiver wakes the relay at most this often per process. PostgreSQL holds a global
# lock from a notifying transaction's commit until it is flushed, so one NOTIFY per
# delivery serialized every commit and halved the receiver's throughput. A relay woken in
# the last RELAY_ACTIVE_SECONDS (tasks/relay.py, longer than this) keeps polling every few
# milliseconds, so the deliveries in between are not left waiting for its slow poll.
NOTIFY_EVERY_SECONDS = 0.05
_COLUMNS = (
    "event_id",
    "event_type",
    "task_id",
    "api_version",
    "body",
    "headers",
    "source",
    "secret_fingerprint",
    "traceparent",
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
    traceparent: str | None = None,
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
        "traceparent": clip(WebhookEvent.traceparent, traceparent),
        "status": status,
        "status_reason": clip(WebhookEvent.status_reason, status_reason),
        "attempts": 0,
        "received_at": now,
        "next_attempt_at": now if status is EventStatus.RECEIVED else None,
        "updated_at": now,
    }


def _storing(notify: bool) -> Any:
    """Return PostgreSQL's statement that stores one row and yields its id if it was new.

    The event's key goes first (WITH key AS (INSERT ... RETURNING)) and the event is
    inserted only from the key's RETURNING row: the event_keys primary key decides, inside
    the database, whether this delivery is the first of its id, whether a concurrent
    delivery won, or whether the event was stored and purged long ago (its key stays, a
    tombstone). No read-then-write race, no error for the losers. ON CONFLICT on the events
    table too: an event stored without a key (before event_keys existed) stays a duplicate.
    The statement can also wake the relay (NOTIFY is sent at commit, so the relay never
    looks before the row is visible).
    """
    columns = [WebhookEvent.__table__.c[name] for name in _COLUMNS]
    key = (
        dialect_insert("postgresql", EventKey)
        .values(event_id=bindparam("event_id"))
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(EventKey.event_id)
        .cte("key")
    )
    values = select(
        *[key.c.event_id if column.name == "event_id" else _parameter(column) for column in columns]
    ).select_from(key)
    insert = (
        dialect_insert("postgresql", WebhookEvent)
        .from_select(columns, values)
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(WebhookEvent.event_id)
    )
    if not notify:
        return insert
    new = insert.cte("new")
    wake = func.pg_notify(literal_column(f"'{RELAY_CHANNEL}'"), literal_column("''"))
    return select(new.c.event_id, wake).select_from(new)


def _parameter(column: Any) -> Any:
    # A parameter in a SELECT list has no column to take its type from: PostgreSQL needs
    # the type spelled out.
    return cast(bindparam(column.name, type_=column.type), column.type)


# Statements built once per dialect and executed with parameters: constructing one on every
# call costs more CPU than the database round trip.
_ONE: dict[bool, Any] = {}
_KEYS: dict[str, Any] = {}
_MANY: dict[str, Any] = {}


def _one_row(notify: bool = True) -> Any:
    if notify not in _ONE:
        _ONE[notify] = _storing(notify)
    return _ONE[notify]


def _new_keys(dialect: str) -> Any:
    # Executed with a list of rows it becomes multi-row INSERTs returning the new keys.
    if dialect not in _KEYS:
        _KEYS[dialect] = (
            dialect_insert(dialect, EventKey)
            .values(event_id=bindparam("event_id"))
            .on_conflict_do_nothing(index_elements=["event_id"])
            .returning(EventKey.event_id)
        )
    return _KEYS[dialect]


def _many_rows(dialect: str) -> Any:
    # Plain INSERT ... VALUES: executed with a list of rows it becomes multi-row INSERTs
    # (SQLAlchemy's insertmanyvalues), which INSERT ... SELECT cannot.
    if dialect not in _MANY:
        binds: dict[str, Any] = {name: bindparam(name) for name in _COLUMNS}
        _MANY[dialect] = (
            dialect_insert(dialect, WebhookEvent)
            .values(binds)
            .on_conflict_do_nothing(index_elements=["event_id"])
            .returning(WebhookEvent.event_id)
        )
    return _MANY[dialect]


def _core(executor: Session | Connection) -> Connection:
    # The session's own connection (same transaction): the ORM's bulk insert path, which a
    # Session takes for an INSERT with parameters, does not take INSERT ... SELECT.
    return executor.connection() if isinstance(executor, Session) else executor


def store_event(executor: Session | Connection, row: dict[str, Any]) -> bool:
    """Store one event (see event_row) unless its id is known; return True if it was new."""
    connection = _core(executor)
    if dialect_name(connection) == "postgresql":
        return connection.execute(_one_row(), row).first() is not None
    # SQLite has no INSERT inside WITH: the key and the event in two statements of the
    # caller's transaction (SQLite runs one writer at a time, so nothing comes between).
    return bool(store_events(connection, [row]))


class InboxWriter:
    """The receiver's store: one event per call, one statement, one round trip, no ORM.

    The same statement as store_event, compiled once, run on a DBAPI connection and cursor
    each thread keeps (models/thread_connections.py) in autocommit. SQLAlchemy's execution
    machinery, its pool's checkout and checkin, and switching a shared connection to
    autocommit and back cost more CPU per delivery than everything else the receiver does
    after verifying. Values pass through the columns' own bind processors, so they are
    stored exactly as SQLAlchemy stores them, and errors come out as SQLAlchemy's DBAPIError
    like any other. The relay is woken at most every NOTIFY_EVERY_SECONDS.
    """

    def __init__(self, database_url: str, **engine_options: Any) -> None:
        self._engine = make_engine(database_url, **engine_options)
        self._dialect = self._engine.dialect
        self._sql: dict[bool, str] = {}
        self._parameters: list[tuple[str, Any]] = []
        self._notified_at = -NOTIFY_EVERY_SECONDS
        if self._dialect.name != "postgresql":
            # SQLite's store is two statements (store_event): run them in a transaction of
            # the ordinary engine. SQLite serves one host, where this speed does not matter.
            return
        # No pre-ping: it costs a round trip per delivery. A connection that died while idle
        # fails one delivery with 503 (Rivya retries it), and its thread opens a new one.
        # NullPool: the engine only opens connections; each thread keeps its own.
        self._engine.dispose()
        self._engine = make_engine(
            database_url,
            **engine_options,
            isolation_level="AUTOCOMMIT",
            pool_pre_ping=False,
            poolclass=NullPool,
        )
        self._dialect = self._engine.dialect
        self._connections = ThreadConnections(self._engine)
        # Positional parameters (%s): the driver then takes a list as it is instead of
        # mapping names to positions on every call.
        dialect_class: Any = type(self._dialect)
        compiler = dialect_class(paramstyle="format")
        quiet = _one_row(notify=False).compile(dialect=compiler)
        waking = _one_row(notify=True).compile(dialect=compiler)
        self._sql = {False: quiet.string, True: waking.string}
        assert quiet.positiontup == waking.positiontup
        columns = WebhookEvent.__table__.c
        # In the order the statement takes them, each with its column's bind processor.
        self._parameters = [
            (name, columns[name].type.dialect_impl(self._dialect).bind_processor(self._dialect))
            for name in quiet.positiontup or ()
        ]

    def store(self, row: dict[str, Any]) -> bool:
        """Store the event unless its id is known; return True if it was new."""
        if not self._sql:
            with self._engine.begin() as connection:
                return store_event(connection, row)
        parameters = [
            row[name] if convert is None else convert(row[name])
            for name, convert in self._parameters
        ]
        now = time.monotonic()
        # Unlocked: two threads both notifying now and then costs nothing.
        notify = now - self._notified_at >= NOTIFY_EVERY_SECONDS
        if notify:
            self._notified_at = now
        sql = self._sql[notify]
        errors = self._dialect.loaded_dbapi.Error
        try:
            held = self._connections.get()
        except errors as exc:
            # No connection could be opened: the database is down like any failed insert.
            raise DBAPIError.instance(sql, parameters, exc, errors) from exc
        try:
            held.cursor.execute(sql, parameters)
            found = held.cursor.fetchone()
        except errors as exc:
            lost = bool(self._dialect.is_disconnect(exc, held.connection, held.cursor))
            if lost:
                self._connections.drop(held)
            raise DBAPIError.instance(
                sql, parameters, exc, errors, connection_invalidated=lost
            ) from exc
        return found is not None

    def close(self) -> None:
        if self._sql:
            self._connections.close()
        self._engine.dispose()


def insert_event(executor: Session | Connection, **values: Any) -> bool:
    """Store one event made by event_row(**values); return True if it was new."""
    return store_event(executor, event_row(**values))


def store_events(executor: Session | Connection, rows: Sequence[dict[str, Any]]) -> list[str]:
    """Store many events with multi-row INSERTs; return the ids of those that were new.

    Their keys go first, in the caller's transaction: only rows whose key was new are
    stored, so a stored or purged event (its key stays) is refused by the primary key, as in
    the receiver's statement. The relay is woken once for all.
    """
    if not rows:
        return []
    connection = _core(executor)
    dialect = dialect_name(connection)
    keys = [{"event_id": row["event_id"]} for row in rows]
    fresh = {found[0] for found in connection.execute(_new_keys(dialect), keys)}
    kept = [row for row in rows if row["event_id"] in fresh]
    if not kept:
        return []
    new = [found[0] for found in connection.execute(_many_rows(dialect), kept)]
    if new:
        wake_relay(connection)
    return new


def wake_relay(executor: Session | Connection, payload: str = "") -> None:
    """Tell a listening relay that rows became due (PostgreSQL; SQLite's relay polls)."""
    if dialect_name(executor) == "postgresql":
        executor.execute(select(func.pg_notify(RELAY_CHANNEL, payload)))


# --- the relay's side --------------------------------------------------------------------


def due_events(
    connection: Connection, now: dt.datetime, limit: int
) -> list[tuple[int, str, str | None, dt.datetime]]:
    """Return (id, event_id, traceparent, due time) of events due for publishing, oldest first.

    On PostgreSQL the rows stay locked until the transaction ends and rows another relay
    holds are skipped, so several relays share the work without publishing a row twice.
    """
    query = (
        select(
            WebhookEvent.id,
            WebhookEvent.event_id,
            WebhookEvent.traceparent,
            WebhookEvent.next_attempt_at,
        )
        .where(text(DUE_PREDICATE))
        .where(WebhookEvent.next_attempt_at <= now)
        .order_by(WebhookEvent.next_attempt_at)
        .limit(limit)
    )
    if connection.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    # next_attempt_at is never NULL here: the WHERE compares it.
    return [(row[0], row[1], row[2], row[3] or now) for row in connection.execute(query)]


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
    now = database_now(connection)  # the sweeper compares enqueued_at with the database's
    result = connection.execute(_MARK_ENQUEUED, {"ids": ids, "due": due, "now": now})
    return int(result.rowcount)


def count_watched(session: Session) -> dict[EventStatus, int]:
    """Return how many events are in each of WATCHED_STATUSES (0 for none)."""
    counts = dict(
        session.execute(
            select(WebhookEvent.status, func.count())
            .where(WebhookEvent.status.in_(WATCHED_STATUSES))
            .group_by(WebhookEvent.status)
        ).all()
    )
    return {status: counts.get(status, 0) for status in WATCHED_STATUSES}


def oldest_unfinished_event(session: Session) -> WebhookEvent | None:
    """Return the event waiting longest for processing (the figure to alert on)."""
    return session.scalars(
        select(WebhookEvent)
        .options(defer(WebhookEvent.body), defer(WebhookEvent.headers))  # nobody reads them
        .where(WebhookEvent.status.in_(UNFINISHED_STATUSES))
        .order_by(WebhookEvent.received_at)
        .limit(1)
    ).first()
