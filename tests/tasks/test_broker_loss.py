"""A broker that lost its messages: the relay notices within seconds and publishes again.

A throwaway Redis without persistence, killed and started empty under a running relay (its
own code in a thread): what was `enqueued` before is queued again, ready for a worker.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from models.events import EventStatus
from rivyahooks_foundation.settings import Settings
from tasks.relay import Relay
from tests.support.eventually import eventually
from tests.support.redisproc import RedisServer, redis_server
from tests.tasks.test_relay import queued_ids, running, statuses, store

IDS = [f"evt_lost_{n}" for n in range(5)]


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path) as server:
        yield server


def losses_said(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "lost its messages" in r.getMessage()]


def test_events_enqueued_before_the_broker_lost_them_are_published_again(
    settings: Settings,
    own_redis: RedisServer,
    sessions: sessionmaker[Session],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="tasks")
    relay = Relay(settings.replace(broker_url=own_redis.url, relay_poll_seconds=0.05))
    with running(relay):
        store(sessions, *IDS)
        eventually(lambda: sorted(queued_ids(own_redis.url)) == IDS, 15, what="first publish")
        assert set(statuses(sessions).values()) == {EventStatus.ENQUEUED}

        own_redis.kill()
        own_redis.start()  # empty: no persistence
        assert queued_ids(own_redis.url) == []

        # Well within the sweeper's visibility timeout (an hour by default).
        eventually(
            lambda: sorted(queued_ids(own_redis.url)) == IDS, 15, what="the events queued again"
        )
        eventually(
            lambda: set(statuses(sessions).values()) == {EventStatus.ENQUEUED},
            15,
            what="the events enqueued again",
        )
    said = losses_said(caplog)
    assert len(said) == 1, said
    assert "5 enqueued event(s) published again" in said[0]


def test_a_broker_that_kept_its_messages_is_left_alone(
    settings: Settings,
    own_redis: RedisServer,
    sessions: sessionmaker[Session],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="tasks")
    relay = Relay(settings.replace(broker_url=own_redis.url, relay_poll_seconds=0.05))
    with running(relay):
        store(sessions, *IDS)
        eventually(lambda: sorted(queued_ids(own_redis.url)) == IDS, 15, what="first publish")
        checks = relay.broker_checks
        eventually(lambda: relay.broker_checks >= checks + 2, 15, what="two more checks")
    assert sorted(queued_ids(own_redis.url)) == IDS
    assert losses_said(caplog) == []
