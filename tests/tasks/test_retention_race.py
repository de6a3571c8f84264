"""A purge and a redelivery of the same event at the same moment: the database refuses it.

The purge's writes are made inside one transaction on its own connection and left
uncommitted while a redelivery starts on another: the redelivery's snapshot has neither the
purge's tombstone nor its delete, and its insert meets the row the purge is deleting. Only
then does the purge commit. Nothing waits by sleeping: the test moves on once the
redelivery has returned or is waiting for one of the purge's locks.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import Engine, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from models.base import utcnow
from models.db import make_session_factory
from models.events import EventSource, EventStatus, WebhookEvent
from models.inbox import InboxWriter, event_row, store_event, store_events
from tasks.retention import PurgeSummary, purge_events
from tests.support.eventually import eventually
from tests.support.inbox import add_event

pytestmark = pytest.mark.postgres

EVENT_ID = "evt_purge_race"
THIRTY_DAYS = dt.timedelta(days=30)


def _url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def _by_writer(engine: Engine, row: dict[str, Any]) -> bool:
    writer = InboxWriter(_url(engine))
    try:
        return writer.store(row)
    finally:
        writer.close()


def _by_store_event(engine: Engine, row: dict[str, Any]) -> bool:
    with make_session_factory(engine).begin() as session:
        return store_event(session, row)


def _by_store_events(engine: Engine, row: dict[str, Any]) -> bool:
    with make_session_factory(engine).begin() as session:
        return store_events(session, [row]) == [row["event_id"]]


REDELIVERIES: dict[str, Callable[[Engine, dict[str, Any]], bool]] = {
    "receiver": _by_writer,
    "store_event": _by_store_event,
    "reconciler": _by_store_events,
}


def _waiting_for_a_lock(engine: Engine) -> bool:
    with engine.connect() as connection:
        return bool(
            connection.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
        )


def _processed_long_ago(sessions: sessionmaker[Session]) -> None:
    add_event(sessions, EVENT_ID)
    with sessions.begin() as session:
        session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.event_id == EVENT_ID)
            .values(status=EventStatus.PROCESSED, updated_at=utcnow() - THIRTY_DAYS * 2)
        )


@pytest.mark.parametrize("path", sorted(REDELIVERIES))
def test_a_redelivery_racing_the_purge_is_refused_by_the_database(
    postgres_engine: Engine, path: str
) -> None:
    sessions = make_session_factory(postgres_engine)
    _processed_long_ago(sessions)
    row = event_row(event_id=EVENT_ID, body=b"{}", source=EventSource.WEBHOOK)
    summary = PurgeSummary()

    with postgres_engine.connect() as purging, ThreadPoolExecutor(1) as pool:
        batch = purging.begin()
        # Every transaction of the purge becomes a savepoint of `batch`: all its writes are
        # made, none is visible to anyone else yet.
        joined = sessionmaker(bind=purging, join_transaction_mode="create_savepoint")
        purge_events(joined, THIRTY_DAYS, summary)
        assert summary.events_purged == 1
        redelivered = pool.submit(REDELIVERIES[path], postgres_engine, row)
        eventually(
            lambda: redelivered.done() or _waiting_for_a_lock(postgres_engine),
            10,
            "the redelivery returned or waits for the purge",
        )
        batch.commit()
        accepted = redelivered.result(timeout=30)

    assert accepted is False
    with sessions() as session:
        assert session.scalars(select(WebhookEvent.event_id)).all() == []
