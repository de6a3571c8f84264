"""The relay, the one publisher: due rows out, `enqueued` only once the broker took them.

Real database, real Redis (a throwaway one where the test breaks it), the relay's own code
in a thread or as the `rivya-hooks relay` process.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from models.base import utcnow
from models.db import make_engine, make_session_factory
from models.events import EventSource, EventStatus, WebhookEvent
from models.generations import Generation, GenerationStatus
from models.inbox import event_row, insert_event, store_events
from models.migrate import upgrade
from models.outbound import CURSOR_ID, DeliveryStatus, OutboundCursor, OutboundDelivery
from rivyahooks_foundation.settings import Settings
from tasks.generation_state import mark_results_stored
from tasks.relay import Relay
from tests.support.eventually import eventually
from tests.support.processes import BIN, ROOT, child_env, stop
from tests.support.receiving_apps import add_app
from tests.support.redisproc import RedisServer, redis_server


def queued_ids(url: str) -> list[str]:
    """Return the event ids of the `events.process` messages waiting on the broker."""
    client = redis.Redis.from_url(url)
    try:
        messages = [json.loads(raw) for raw in client.lrange("celery", 0, -1)]
    finally:
        client.close()
    ids = []
    for message in messages:
        assert message["headers"]["task"] == "events.process"
        args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        ids.append(args[0])
    return ids


def store(sessions: sessionmaker[Session], *event_ids: str) -> None:
    with sessions.begin() as session:
        for event_id in event_ids:
            insert_event(session, event_id=event_id, body=b"{}", source=EventSource.WEBHOOK)


def statuses(sessions: sessionmaker[Session]) -> dict[str, EventStatus]:
    with sessions() as session:
        return {
            event_id: status
            for event_id, status in session.execute(
                select(WebhookEvent.event_id, WebhookEvent.status)
            )
        }


@contextmanager
def running(relay: Relay) -> Iterator[Relay]:
    """Run the relay's loop in a thread for the block; stop it after."""
    thread = threading.Thread(target=relay.run, daemon=True)
    thread.start()
    try:
        yield relay
    finally:
        relay.stop()
        thread.join(10)
        assert not thread.is_alive()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path) as server:
        yield server


def test_due_events_are_published_once_and_marked_enqueued(
    settings: Settings, redis_url: str, sessions: sessionmaker[Session]
) -> None:
    settings = settings.replace(broker_url=redis_url)
    store(sessions, "evt_1", "evt_2", "evt_3", "evt_due", "evt_later", "evt_done")
    now = utcnow()
    with sessions.begin() as session:
        retry = {"status": EventStatus.FAILED, "attempts": 1}
        session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.event_id == "evt_due")
            .values(**retry, next_attempt_at=now - dt.timedelta(seconds=1))
        )
        session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.event_id == "evt_later")
            .values(**retry, next_attempt_at=now + dt.timedelta(hours=1))
        )
        session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.event_id == "evt_done")
            .values(status=EventStatus.PROCESSED, next_attempt_at=None)
        )
    relay = Relay(settings)
    try:
        assert relay.publish_due() == 4
        assert relay.publish_due() == 0
    finally:
        relay.close()

    assert sorted(queued_ids(redis_url)) == ["evt_1", "evt_2", "evt_3", "evt_due"]
    assert statuses(sessions) == {
        "evt_1": EventStatus.ENQUEUED,
        "evt_2": EventStatus.ENQUEUED,
        "evt_3": EventStatus.ENQUEUED,
        "evt_due": EventStatus.ENQUEUED,
        "evt_later": EventStatus.FAILED,
        "evt_done": EventStatus.PROCESSED,
    }
    with sessions() as session:
        enqueued = session.scalars(
            select(WebhookEvent).where(WebhookEvent.status == EventStatus.ENQUEUED)
        ).all()
    assert all(e.enqueued_at is not None and e.next_attempt_at is None for e in enqueued)


def test_a_broker_outage_stops_publishing_and_the_relay_resumes_by_itself(
    settings: Settings,
    own_redis: RedisServer,
    sessions: sessionmaker[Session],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="tasks.relay")
    relay = Relay(settings.replace(broker_url=own_redis.url, relay_poll_seconds=0.05))
    with running(relay):
        own_redis.kill()
        store(sessions, *(f"evt_{n}" for n in range(5)))
        eventually(lambda: relay.refused >= 3, 30, what="three refused batches")
        assert set(statuses(sessions).values()) == {EventStatus.RECEIVED}
        down = [r for r in caplog.records if "broker unavailable" in r.getMessage()]
        # Said once, with the cause and the next step; not once per batch or row.
        assert len(down) == 1
        assert "next: check BROKER_URL" in down[0].getMessage()

        own_redis.start()
        eventually(
            lambda: set(statuses(sessions).values()) == {EventStatus.ENQUEUED},
            30,
            what="the backlog to be published",
        )
    assert sorted(queued_ids(own_redis.url)) == [f"evt_{n}" for n in range(5)]
    back = [r for r in caplog.records if "broker reachable again" in r.getMessage()]
    assert len(back) == 1


@pytest.mark.postgres
def test_a_notification_wakes_the_relay_long_before_its_poll(
    postgres_url: str,
    redis_url: str,
    postgres_engine: Any,
) -> None:
    sessions = make_session_factory(postgres_engine)
    settings = Settings(database_url=postgres_url, broker_url=redis_url, relay_poll_seconds=60)
    relay = Relay(settings)
    with running(relay):
        assert relay.listener is not None
        eventually(lambda: relay.listener.listening, 10, what="LISTEN")  # type: ignore[union-attr]
        store(sessions, "evt_woken")
        # Without the NOTIFY in the storing statement this would take the 60 s poll.
        eventually(
            lambda: statuses(sessions)["evt_woken"] is EventStatus.ENQUEUED,
            10,
            what="the relay to publish",
        )
    assert queued_ids(redis_url) == ["evt_woken"]


@pytest.mark.postgres
def test_a_stored_result_wakes_the_relay_to_make_its_apps_messages_long_before_its_poll(
    postgres_url: str,
    redis_url: str,
    postgres_engine: Any,
) -> None:
    sessions = make_session_factory(postgres_engine)
    app_id, _ = add_app(sessions, "shop", "https://shop.example.com/hooks")
    settings = Settings(database_url=postgres_url, broker_url=redis_url, relay_poll_seconds=60)
    relay = Relay(settings)
    with running(relay):
        # Its first turn has read the feed (the cursor is made then); it now waits 60 s.
        eventually(lambda: cursor_exists(sessions), 10, what="the relay's first fan-out")
        with sessions.begin() as session:
            generation = Generation(task_id="task_stored", status=GenerationStatus.SUCCEEDED)
            session.add(generation)
            session.flush()
            mark_results_stored(generation)
        # Without the NOTIFY of a final state this would take the 60 s poll.
        eventually(
            lambda: delivery_statuses(sessions, app_id) == [DeliveryStatus.ENQUEUED],
            10,
            what="the message made and published",
        )


def cursor_exists(sessions: sessionmaker[Session]) -> bool:
    with sessions() as session:
        return session.get(OutboundCursor, CURSOR_ID) is not None


def delivery_statuses(sessions: sessionmaker[Session], app_id: str) -> list[DeliveryStatus]:
    with sessions() as session:
        return list(
            session.scalars(
                select(OutboundDelivery.status).where(OutboundDelivery.app_id == app_id)
            )
        )


@pytest.mark.postgres
def test_two_relays_share_the_work_and_publish_nothing_twice(
    postgres_url: str, redis_url: str, postgres_engine: Any
) -> None:
    sessions = make_session_factory(postgres_engine)
    count = 3000
    with sessions.begin() as session:
        store_events(
            session,
            [
                event_row(event_id=f"evt_{n:05d}", body=b"{}", source=EventSource.WEBHOOK)
                for n in range(count)
            ],
        )
    settings = Settings(database_url=postgres_url, broker_url=redis_url)
    relays = [Relay(settings), Relay(settings)]
    start = threading.Barrier(len(relays))
    published: list[int] = []

    def drain(relay: Relay) -> None:
        start.wait(10)
        while relay.publish_due():
            pass
        published.append(relay.published)

    threads = [threading.Thread(target=drain, args=(r,)) for r in relays]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        for relay in relays:
            relay.close()

    ids = queued_ids(redis_url)
    assert len(ids) == count
    assert len(set(ids)) == count
    assert sum(published) == count
    assert set(statuses(sessions).values()) == {EventStatus.ENQUEUED}


def test_on_sqlite_the_relay_polls(redis_url: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'relay.sqlite3'}"
    upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    relay = Relay(Settings(database_url=url, broker_url=redis_url))
    assert relay.listener is None
    assert relay.poll_seconds <= 0.25
    try:
        with running(relay):
            store(sessions, "evt_polled")
            eventually(
                lambda: statuses(sessions)["evt_polled"] is EventStatus.ENQUEUED,
                5,
                what="the relay to publish",
            )
    finally:
        engine.dispose()
    assert queued_ids(redis_url) == ["evt_polled"]


def test_the_relay_role_stops_cleanly_on_sigterm(settings: Settings, tmp_path: Path) -> None:
    log = tmp_path / "relay.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(BIN / "rivya-hooks"), "relay"],
            cwd=ROOT,
            env=child_env(settings),
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
        try:
            eventually(lambda: "relay started" in log.read_text(), 30, what="the relay to start")
            os.kill(process.pid, signal.SIGTERM)
            assert process.wait(10) == 0
        finally:
            stop(process)
    text = log.read_text()
    assert "SIGTERM received, stopping" in text
    assert "relay stopped" in text
