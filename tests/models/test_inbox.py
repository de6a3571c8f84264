"""The inbox: the receiver's one-statement store (InboxWriter) and the session-bound store_event.

InboxWriter bypasses the ORM for speed, so these tests hold it to the ORM path: the same
row, the same duplicate and tombstone rules, the same errors when the database goes away.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from models.base import utcnow
from models.event_keys import EventKey
from models.events import EventSource, EventStatus, WebhookEvent
from models.inbox import RELAY_CHANNEL, InboxWriter, event_row, store_event
from tests.support.processes import free_port
from tests.support.tcpproxy import tcp_proxy


def _row(event_id: str) -> dict[str, object]:
    return event_row(
        event_id=event_id,
        body=b'{"id": "%s", "prompt": "a lighthouse"}' % event_id.encode(),
        source=EventSource.WEBHOOK,
        event_type="generation.succeeded",
        task_id="task_inbox",
        api_version="2026-01-01",
        headers={"webhook-id": event_id, "content-type": "application/json"},
        secret_fingerprint="fp_1",
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )


def _stored(sessions: sessionmaker[Session], event_id: str) -> WebhookEvent | None:
    with sessions() as session:
        return session.scalars(
            select(WebhookEvent).where(WebhookEvent.event_id == event_id)
        ).one_or_none()


@pytest.fixture
def writer(database_url: str) -> Iterator[InboxWriter]:
    inbox = InboxWriter(database_url)
    yield inbox
    inbox.close()


def test_a_new_event_is_stored_once(writer: InboxWriter, sessions: sessionmaker[Session]) -> None:
    row = _row("evt_inbox_once")
    assert writer.store(row) is True
    assert writer.store(row) is False
    with sessions() as session:
        ids = session.scalars(select(WebhookEvent.event_id)).all()
    assert ids == ["evt_inbox_once"]


def test_the_writer_stores_exactly_what_store_event_stores(
    writer: InboxWriter, sessions: sessionmaker[Session]
) -> None:
    fast = _row("evt_inbox_fast")
    orm = {**fast, "event_id": "evt_inbox_orm"}
    assert writer.store(fast) is True
    with sessions.begin() as session:
        assert store_event(session, orm) is True
    by_writer, by_session = _stored(sessions, "evt_inbox_fast"), _stored(sessions, "evt_inbox_orm")
    assert by_writer is not None
    assert by_session is not None
    columns = [c.name for c in WebhookEvent.__table__.c if c.name not in ("id", "event_id")]
    assert {c: getattr(by_writer, c) for c in columns} == {
        c: getattr(by_session, c) for c in columns
    }
    assert by_writer.status is EventStatus.RECEIVED
    assert by_writer.next_attempt_at == by_writer.received_at  # due for the relay at once
    assert by_writer.headers == {"webhook-id": "evt_inbox_fast", "content-type": "application/json"}


def test_a_purged_event_is_a_duplicate(
    writer: InboxWriter, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as session:
        session.add(EventKey(event_id="evt_inbox_purged", purged_at=utcnow()))
    assert writer.store(_row("evt_inbox_purged")) is False
    assert _stored(sessions, "evt_inbox_purged") is None


@pytest.mark.postgres
def test_a_stored_event_wakes_the_relay(postgres_url: str, postgres_engine: object) -> None:
    dsn = make_url(postgres_url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(dsn, autocommit=True) as listener:
        listener.execute(f"LISTEN {RELAY_CHANNEL}")
        inbox = InboxWriter(postgres_url)
        try:
            assert inbox.store(_row("evt_inbox_wakes")) is True
        finally:
            inbox.close()
        channels = [n.channel for n in listener.notifies(timeout=10, stop_after=1)]
    assert channels == [RELAY_CHANNEL]


@pytest.mark.postgres
def test_a_lost_connection_fails_one_store_and_is_replaced(
    postgres_url: str, postgres_engine: object
) -> None:
    url = make_url(postgres_url)
    with tcp_proxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        inbox = InboxWriter(url.set(host="127.0.0.1", port=proxy.port).render_as_string(False))
        try:
            assert inbox.store(_row("evt_inbox_before")) is True
            proxy.cut()
            with pytest.raises(DBAPIError) as caught:
                inbox.store(_row("evt_inbox_during"))
            assert caught.value.connection_invalidated is True
            proxy.restore()
            assert inbox.store(_row("evt_inbox_after")) is True
        finally:
            inbox.close()


@pytest.mark.postgres
def test_a_database_that_cannot_be_reached_raises_dbapi_error(postgres_url: str) -> None:
    nowhere = make_url(postgres_url).set(host="127.0.0.1", port=free_port())
    inbox = InboxWriter(nowhere.render_as_string(False))
    try:
        with pytest.raises(DBAPIError):
            inbox.store(_row("evt_inbox_nowhere"))
    finally:
        inbox.close()
