"""The receiver when the broker or the database goes away, and after they come back.

Broker down: nothing changes for Rivya. The receiver never talks to the broker; deliveries
are stored and answered as fast as with it up (the relay publishes them once it is back,
see test_relay.py). Database down: deliveries are refused with 503 and Retry-After so Rivya
retries them, and nothing is half-written.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from models.events import EventStatus, WebhookEvent
from receiver import create_app
from rivyahooks_foundation.settings import Settings
from tests.conftest import close_app, make_event, signed_delivery
from tests.support import services
from tests.support.redisproc import RedisServer, redis_server
from tests.support.tcpproxy import TcpProxy, tcp_proxy

PATH = "/webhooks/rivya"
DELIVERIES = 20


def rows(sessions: sessionmaker[Session]) -> list[WebhookEvent]:
    with sessions() as session:
        return list(session.scalars(select(WebhookEvent).order_by(WebhookEvent.id)))


# --- broker ----------------------------------------------------------------------------


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path) as server:
        yield server


def deliver_many(client: FlaskClient) -> float:
    """Deliver DELIVERIES new events; return the slowest answer's time in seconds."""
    slowest = 0.0
    for _ in range(DELIVERIES):
        body, headers = signed_delivery(make_event())
        started = time.monotonic()
        response = client.post(PATH, data=body, headers=headers)
        slowest = max(slowest, time.monotonic() - started)
        assert response.status_code == 202
        assert response.json == {"status": "accepted"}
    return slowest


def test_broker_outage_changes_nothing_for_deliveries(
    own_redis: RedisServer, settings: Settings, sessions: sessionmaker[Session]
) -> None:
    app = create_app(settings.replace(broker_url=own_redis.url))
    client = app.test_client()
    try:
        up = deliver_many(client)
        own_redis.kill()
        down = deliver_many(client)
        # The broker is not the receiver's dependency: it stays ready.
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json == {"status": "ready", "failing": []}
    finally:
        close_app(app)
    # Before this design a delivery waited out the broker's 2 s connect timeout; now no
    # answer comes near that, with the broker up or down.
    assert down < max(1.0, 3 * up), (up, down)
    stored = rows(sessions)
    assert len(stored) == 2 * DELIVERIES
    assert {row.status for row in stored} == {EventStatus.RECEIVED}
    assert all(row.next_attempt_at is not None for row in stored)


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
    close_app(app)


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
    assert stored[1].status is EventStatus.RECEIVED
    again = proxied_client.post(PATH, data=body, headers=headers)
    assert again.status_code == 200
    assert len(rows(sessions)) == 2


def test_database_down_before_the_first_delivery_answers_503(
    proxied: tuple[TcpProxy, str],
    proxied_client: FlaskClient,
    sessions: sessionmaker[Session],
) -> None:
    # The inbox's pool holds no connection yet, so the delivery has to open one: that
    # failure is the database being down too, not a crash.
    proxy, _ = proxied
    proxy.cut()
    body, headers = signed_delivery(make_event())
    response = proxied_client.post(PATH, data=body, headers=headers)
    assert response.status_code == 503
    assert response.json == {"error": {"code": "database_unavailable"}}
    assert int(response.headers["Retry-After"]) > 0
    proxy.restore()
    assert proxied_client.post(PATH, data=body, headers=headers).status_code == 202
    assert len(rows(sessions)) == 1
