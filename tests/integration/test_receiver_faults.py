"""The receiver when its broker or its database goes away, and after they come back.

Broker down: deliveries are still stored and acknowledged, and the sweeper hands them over
once the broker is back. Database down: deliveries are refused with 503 and Retry-After so
Rivya retries them, and nothing is half-written.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from celery import Celery
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from models.events import EventStatus, WebhookEvent
from receiver import create_app
from rivyahooks.broker import celery_config
from rivyahooks.settings import Settings
from tasks.sweep import sweep
from tests.conftest import make_event, signed_delivery
from tests.support import services
from tests.support.redisproc import RedisServer, redis_server
from tests.support.tcpproxy import TcpProxy, tcp_proxy

PATH = "/webhooks/rivya"


def rows(sessions: sessionmaker[Session]) -> list[WebhookEvent]:
    with sessions() as session:
        return list(session.scalars(select(WebhookEvent).order_by(WebhookEvent.id)))


def queued(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return int(client.llen("celery"))
    finally:
        client.close()


def closing(app: Flask) -> None:
    app.extensions["rivyahooks"].engine.dispose()
    app.extensions["rivyahooks"].enqueuer.close()


# --- broker ----------------------------------------------------------------------------


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path) as server:
        yield server


def test_broker_outage_is_swept_after_recovery(
    own_redis: RedisServer, settings: Settings, sessions: sessionmaker[Session]
) -> None:
    settings = settings.replace(broker_url=own_redis.url)
    app = create_app(settings)
    client = app.test_client()
    try:
        body, headers = signed_delivery(make_event())
        assert client.post(PATH, data=body, headers=headers).status_code == 202
        assert client.get("/readyz").status_code == 200
        assert queued(own_redis.url) == 1

        own_redis.kill()
        down = [signed_delivery(make_event()) for _ in range(3)]
        started = time.monotonic()
        for body, headers in down:
            response = client.post(PATH, data=body, headers=headers)
            assert response.status_code == 202
            assert response.json == {"status": "accepted"}
        # Acknowledged fast enough for Rivya's short delivery timeout.
        assert time.monotonic() - started < 15
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json["failing"] == ["broker"]
        stored = rows(sessions)
        assert [row.status for row in stored] == [EventStatus.ENQUEUED] + [EventStatus.RECEIVED] * 3

        own_redis.start()  # same port, empty: the outage lost nothing we had not stored
        publisher = Celery("sweep-test", set_as_current=False)
        publisher.config_from_object(celery_config(settings))
        try:
            result = sweep(
                sessions,
                settings,
                lambda event_id: publisher.send_task("events.process", args=[event_id]),
            )
        finally:
            publisher.close()
        assert (result.found, result.enqueued) == (3, 3)
        assert [row.status for row in rows(sessions)] == [EventStatus.ENQUEUED] * 4
        assert queued(own_redis.url) == 3

        # The web process's own broker connection recovers without a restart.
        assert client.get("/readyz").status_code == 200
        body, headers = signed_delivery(make_event())
        assert client.post(PATH, data=body, headers=headers).status_code == 202
        assert rows(sessions)[-1].status is EventStatus.ENQUEUED
        assert queued(own_redis.url) == 4
    finally:
        closing(app)


def test_sweep_with_broker_still_down_changes_nothing(
    own_redis: RedisServer, settings: Settings, sessions: sessionmaker[Session]
) -> None:
    settings = settings.replace(broker_url=own_redis.url)
    app = create_app(settings)
    try:
        own_redis.kill()
        body, headers = signed_delivery(make_event())
        assert app.test_client().post(PATH, data=body, headers=headers).status_code == 202
    finally:
        closing(app)
    publisher = Celery("sweep-test", set_as_current=False)
    publisher.config_from_object(celery_config(settings))
    try:
        result = sweep(
            sessions,
            settings,
            lambda event_id: publisher.send_task("events.process", args=[event_id], retry=False),
        )
    finally:
        publisher.close()
    assert (result.found, result.enqueued) == (1, 0)
    assert [row.status for row in rows(sessions)] == [EventStatus.RECEIVED]


# --- database --------------------------------------------------------------------------


@pytest.fixture
def proxied(postgres_url: str) -> Iterator[tuple[TcpProxy, str]]:
    """A TCP proxy in front of PostgreSQL, and the database URL that goes through it."""
    target = urlsplit(services.POSTGRES_ADMIN_URL)
    with tcp_proxy(target.hostname or "127.0.0.1", target.port or 5432) as proxy:
        url = make_url(postgres_url).set(host="127.0.0.1", port=proxy.port)
        yield proxy, url.render_as_string(hide_password=False)


@pytest.fixture
def proxied_client(
    proxied: tuple[TcpProxy, str], settings: Settings, sessions: sessionmaker[Session]
) -> Iterator[FlaskClient]:
    _, url = proxied
    app = create_app(settings.replace(database_url=url))
    yield app.test_client()
    closing(app)


def test_database_outage_answers_503_and_recovers(
    proxied: tuple[TcpProxy, str],
    proxied_client: FlaskClient,
    sessions: sessionmaker[Session],
) -> None:
    proxy, _ = proxied
    first, first_headers = signed_delivery(make_event())
    assert proxied_client.post(PATH, data=first, headers=first_headers).status_code == 202

    proxy.cut()
    event = make_event()
    body, headers = signed_delivery(event)
    started = time.monotonic()
    response = proxied_client.post(PATH, data=body, headers=headers)
    assert response.status_code == 503
    assert response.json == {"error": {"code": "database_unavailable"}}
    assert int(response.headers["Retry-After"]) > 0
    assert time.monotonic() - started < 10
    ready = proxied_client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json["failing"] == ["database"]
    # The real database (not through the proxy) holds only the delivery taken before.
    assert [row.body for row in rows(sessions)] == [first]

    proxy.restore()
    assert proxied_client.get("/readyz").status_code == 200
    # Rivya's retry of the refused delivery: taken now, once.
    retry = proxied_client.post(PATH, data=body, headers=headers)
    assert retry.status_code == 202
    stored = rows(sessions)
    assert len(stored) == 2
    assert stored[1].event_id == event["id"]
    assert stored[1].body == body
    assert stored[1].status is EventStatus.ENQUEUED
    again = proxied_client.post(PATH, data=body, headers=headers)
    assert again.status_code == 200
    assert len(rows(sessions)) == 2
