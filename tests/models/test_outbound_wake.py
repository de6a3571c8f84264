"""A generation's final state changing wakes the relay: a NOTIFY sent when its change commits."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from models.generations import Generation, GenerationStatus, record_change
from models.inbox import RELAY_CHANNEL
from models.outbound_wake import OUTBOUND_WAKE, record_final_change
from tests.support.eventually import eventually

pytestmark = pytest.mark.postgres


@pytest.fixture
def listening(postgres_url: str) -> Iterator[Any]:
    """A connection LISTENing on the relay's channel, as the relay's is."""
    url = make_url(postgres_url).set(drivername="postgresql")
    connection = psycopg.connect(url.render_as_string(False), autocommit=True)
    connection.execute(f"LISTEN {RELAY_CHANNEL}")
    yield connection
    connection.close()


def change(engine: Engine, task_id: str, *, final: bool, commit: bool = True) -> None:
    with Session(engine) as session:
        session.add(Generation(task_id=task_id, status=GenerationStatus.SUCCEEDED))
        session.flush()
        if final:
            record_final_change(session, task_id)
        else:
            record_change(session, task_id)
        if commit:
            session.commit()
        else:
            session.rollback()


def test_a_final_change_notifies_the_relay_when_it_commits_and_only_then(
    postgres_engine: Engine, listening: Any
) -> None:
    change(postgres_engine, "task_running", final=False)
    change(postgres_engine, "task_rolled_back", final=True, commit=False)
    change(postgres_engine, "task_stored", final=True)

    # Notifications arrive in commit order: once the final change's is in, any earlier one
    # would be too.
    payloads = eventually(
        lambda: [n.payload for n in listening.notifies(timeout=0.5, stop_after=1)],
        10,
        what="the final change's notification",
    )
    payloads += [n.payload for n in listening.notifies(timeout=0)]
    assert payloads == [OUTBOUND_WAKE]
