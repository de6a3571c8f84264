"""Identical deliveries racing through a real gunicorn: one row, one message, all 2xx."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models.events import EventStatus, WebhookEvent
from rivyahooks_foundation.settings import Settings
from tasks.relay import Relay
from tests.conftest import SECRET, make_event, signed_delivery
from tests.support.processes import gunicorn

COPIES = 50
# A Redis database of this test's own: the suite's shared one (redis_url) may have a worker
# of another test consuming it, and this test counts the messages nobody consumed.
QUEUE_DB = 12


@pytest.fixture
def queue_url(redis_url: str) -> str:
    url = redis_url.rsplit("/", 1)[0] + f"/{QUEUE_DB}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    return url


def test_parallel_identical_deliveries_store_and_enqueue_once(
    postgres_url: str, queue_url: str, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    settings = Settings(database_url=postgres_url, broker_url=queue_url, webhook_secrets=(SECRET,))
    body, headers = signed_delivery(make_event())
    start = threading.Barrier(COPIES)

    def deliver(client: httpx.Client) -> int:
        start.wait(30)
        return client.post("/webhooks/rivya", content=body, headers=headers).status_code

    with gunicorn(settings, workers=2, threads=8, log=tmp_path / "gunicorn.log") as url:
        limits = httpx.Limits(max_connections=COPIES)
        with (
            httpx.Client(base_url=url, timeout=30, limits=limits) as client,
            ThreadPoolExecutor(COPIES) as pool,
        ):
            statuses = list(pool.map(deliver, [client] * COPIES))

    assert all(200 <= status < 300 for status in statuses), statuses
    assert statuses.count(202) == 1  # exactly one was new; the others were duplicates
    with sessions() as session:
        stored = list(session.scalars(select(WebhookEvent)))
    assert len(stored) == 1
    assert stored[0].body == body
    assert stored[0].status is EventStatus.RECEIVED

    relay = Relay(settings)
    try:
        assert relay.publish_due() == 1
        assert relay.publish_due() == 0
    finally:
        relay.close()
    with sessions() as session:
        assert session.scalars(select(WebhookEvent.status)).one() is EventStatus.ENQUEUED
    queue = redis.Redis.from_url(queue_url)
    try:
        assert queue.llen("celery") == 1
    finally:
        queue.close()
