"""Beat's database gauges: counted once per interval, kept while the database is away."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from models.base import utcnow
from models.db import make_engine, make_session_factory
from models.events import EventSource, EventStatus
from models.inbox import insert_event
from tasks.database_gauges import DatabaseGauges
from tests.conftest import make_event
from tests.support.metrics import Scrape
from tests.support.tcpproxy import tcp_proxy


def _add(sessions: sessionmaker[Session], status: EventStatus, count: int) -> None:
    with sessions.begin() as session:
        for _ in range(count):
            insert_event(
                session,
                event_id=make_event()["id"],
                body=b"{}",
                source=EventSource.WEBHOOK,
                status=status,
            )


def test_database_gauges_count_small_statuses_once_per_interval(
    sessions: sessionmaker[Session],
) -> None:
    _add(sessions, EventStatus.RECEIVED, 2)
    _add(sessions, EventStatus.DEAD, 3)
    _add(sessions, EventStatus.PROCESSED, 4)
    before = utcnow().timestamp()
    gauges = DatabaseGauges(sessions, interval_seconds=3600)
    first = _collected(gauges)
    assert first[("rivyahooks_events", (("status", "received"),))] == 2
    assert first[("rivyahooks_events", (("status", "dead"),))] == 3
    # Finished events are the large part of the table: never counted here.
    assert ("rivyahooks_events", (("status", "processed"),)) not in first
    assert first[("rivyahooks_oldest_unfinished_event_age_seconds", ())] >= 0
    assert first[("rivyahooks_database_gauges_timestamp_seconds", ())] >= before - 1

    # Within the interval a scrape gets the stored values; a new interval queries again.
    _add(sessions, EventStatus.DEAD, 1)
    assert _collected(gauges) == first
    fresh = _collected(DatabaseGauges(sessions, interval_seconds=3600))
    assert fresh[("rivyahooks_events", (("status", "dead"),))] == 4


def _collected(gauges: DatabaseGauges) -> Scrape:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in gauges.collect()
        for sample in family.samples
    }


@pytest.mark.postgres
def test_database_gauges_keep_their_last_values_while_the_database_is_unreachable(
    postgres_url: str, postgres_engine: Engine
) -> None:
    _add(make_session_factory(postgres_engine), EventStatus.FAILED, 1)
    url = make_url(postgres_url)
    with tcp_proxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        engine = make_engine(url.set(port=proxy.port).render_as_string(hide_password=False))
        try:
            gauges = DatabaseGauges(make_session_factory(engine), interval_seconds=0)
            first = _collected(gauges)
            assert first[("rivyahooks_events", (("status", "failed"),))] == 1
            proxy.cut()
            assert _collected(gauges) == first
        finally:
            engine.dispose()
