"""The worker behind PgBouncer in transaction pooling: events processed one after another.

Server connections are handed out in turn (tests/support/pgbouncer.py), so a statement
psycopg prepared on one is missing on the next: DATABASE_POOLER=pgbouncer must turn
preparing off for the worker's engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from models.db import make_session_factory
from models.events import EventStatus
from rivyahooks_foundation.settings import Settings
from rivyahooks_simulator.server import Simulator
from tasks.processing import process_event
from tasks.runtime import Runtime
from tests.support.attempts import lifecycle_runtime
from tests.support.inbox import add_event, read_event
from tests.support.pgbouncer import pgbouncer

pytestmark = pytest.mark.postgres
# Well past psycopg's prepare threshold (a statement's 5th run), for every statement.
EVENTS = 8


@pytest.fixture
def bounced_runtime(
    settings: Settings,
    simulator: Simulator,
    postgres_url: str,
    postgres_engine: Any,
    tmp_path: Path,
) -> Iterator[Runtime]:
    with pgbouncer(postgres_url, tmp_path / "pgbouncer") as url:
        bounced = settings.replace(database_url=url, database_pooler="pgbouncer")
        with lifecycle_runtime(bounced, simulator) as runtime:
            yield runtime


def test_events_are_processed_through_transaction_pooling(
    bounced_runtime: Runtime, simulator: Simulator, postgres_engine: Any
) -> None:
    sessions: sessionmaker[Session] = make_session_factory(postgres_engine)
    task_ids = simulator.scenario(EVENTS, outcome="succeeded")
    simulator.wait_terminal(task_ids)
    for number, task_id in enumerate(task_ids):
        add_event(sessions, f"evt_bounced_{number}", task_id=task_id)

    for number in range(EVENTS):
        outcome = process_event(bounced_runtime, f"evt_bounced_{number}")
        assert outcome is not None
        assert outcome.status is EventStatus.PROCESSED

    assert {read_event(sessions, f"evt_bounced_{n}").status for n in range(EVENTS)} == {
        EventStatus.PROCESSED
    }
