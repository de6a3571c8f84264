"""The relay behind PgBouncer in transaction pooling: no LISTEN there, so it polls and says so.

A real PgBouncer of the test's own (tests/support/pgbouncer.py) in front of the test's
PostgreSQL database; events are stored and published through it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from models.db import make_engine, make_session_factory
from models.events import EventStatus
from rivyahooks_foundation.settings import Settings
from tasks.relay import Relay
from tests.support.eventually import eventually
from tests.support.pgbouncer import pgbouncer
from tests.tasks.test_relay import queued_ids, running, statuses, store

pytestmark = pytest.mark.postgres


@pytest.fixture
def bounced_url(postgres_url: str, postgres_engine: Any, tmp_path: Path) -> Iterator[str]:
    with pgbouncer(postgres_url, tmp_path / "pgbouncer") as url:
        yield url


def polling_said(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "without LISTEN" in r.getMessage()]


@pytest.mark.parametrize("told", [False, True], ids=["detected", "told"])
def test_behind_transaction_pooling_the_relay_polls_and_publishes(
    bounced_url: str, redis_url: str, caplog: pytest.LogCaptureFixture, told: bool
) -> None:
    caplog.set_level(logging.INFO, logger="tasks.relay")
    options: dict[str, Any] = {"database_pooler": "pgbouncer"} if told else {}
    settings = Settings(
        database_url=bounced_url, broker_url=redis_url, relay_poll_seconds=0.3, **options
    )
    relay = Relay(settings)
    # The writers are configured right in both cases: only the relay is left to find out.
    engine = make_engine(bounced_url, transaction_pooling=True)
    sessions: sessionmaker[Session] = make_session_factory(engine)
    with running(relay):
        eventually(lambda: polling_said(caplog), 30, what="the relay to say it polls")
        ids = [f"evt_bounced_{n}" for n in range(12)]
        for event_id in ids:
            store(sessions, event_id)
        eventually(
            lambda: set(statuses(sessions).values()) == {EventStatus.ENQUEUED},
            15,
            what="the relay to publish through PgBouncer",
        )
        assert relay.listener is None
    engine.dispose()
    assert sorted(queued_ids(redis_url)) == sorted(ids)
    said = polling_said(caplog)
    assert len(said) == 1, said
    assert "polling every 0.30 s" in said[0]
