"""Beat's database gauges: counted once per interval, kept while the database is away."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine, delete, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from models.apps import App
from models.base import utcnow
from models.db import make_engine, make_session_factory
from models.events import EventSource, EventStatus
from models.inbox import insert_event
from models.outbound import DeliveryStatus, OutboundDelivery
from tasks.database_gauges import DatabaseGauges
from tests.conftest import make_event
from tests.support.metrics import Scrape
from tests.support.outbound import add_app, add_delivery, add_message
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


def test_database_gauges_give_each_apps_backlog_and_overdue_and_forget_a_removed_app(
    sessions: sessionmaker[Session],
) -> None:
    now = utcnow()
    with sessions.begin() as session:
        shop = add_app(session, "shop")
        crm = add_app(session, "crm")
        idle = add_app(session, "idle")
        add_app(session, "retired", enabled=False)
        for status, due in (
            (DeliveryStatus.PENDING, now - dt.timedelta(minutes=20)),  # the oldest due
            (DeliveryStatus.PENDING, now - dt.timedelta(minutes=1)),
            (DeliveryStatus.PENDING, now + dt.timedelta(hours=2)),  # a retry, not yet due
            (DeliveryStatus.ENQUEUED, None),
            (DeliveryStatus.SENDING, None),
            (DeliveryStatus.DELIVERED, None),
            (DeliveryStatus.FAILED, None),
        ):
            add_delivery(session, add_message(session), shop, status, next_attempt_at=due)
        add_delivery(
            session,
            add_message(session),
            crm,
            DeliveryStatus.PENDING,
            next_attempt_at=now + dt.timedelta(minutes=5),
        )
        add_delivery(session, add_message(session), idle, DeliveryStatus.DELIVERED)

    scrape = _collected(DatabaseGauges(sessions, interval_seconds=0))

    backlog = "rivyahooks_outbound_backlog"
    assert scrape[(backlog, (("app", "shop"),))] == 5
    assert scrape[(backlog, (("app", "crm"),))] == 1
    assert scrape[(backlog, (("app", "idle"),))] == 0
    assert scrape[(backlog, (("app", "retired"),))] == 0
    overdue = "rivyahooks_outbound_oldest_overdue_seconds"
    assert 20 * 60 - 5 <= scrape[(overdue, (("app", "shop"),))] <= 20 * 60 + 60
    assert scrape[(overdue, (("app", "crm"),))] == 0
    assert scrape[("rivyahooks_outbound_apps_disabled_now", ())] == 1

    # Removed: its series goes with it. Disabled: its held deliveries are not overdue.
    with sessions.begin() as session:
        session.execute(delete(OutboundDelivery).where(OutboundDelivery.app_id == crm.id))
        session.delete(session.get(App, crm.id))
        session.execute(update(App).where(App.id == shop.id).values(enabled=False))
    again = _collected(DatabaseGauges(sessions, interval_seconds=0))
    assert {labels for name, labels in again if name == backlog} == {
        (("app", "shop"),),
        (("app", "idle"),),
        (("app", "retired"),),
    }
    assert again[(overdue, (("app", "shop"),))] == 0
    assert again[("rivyahooks_outbound_apps_disabled_now", ())] == 2


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
