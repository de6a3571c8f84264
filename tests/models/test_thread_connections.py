"""Each thread's kept connection: reused by its thread, never shared, closed with the thread."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlalchemy.pool import NullPool

from models.db import make_engine
from models.thread_connections import Held, ThreadConnections
from tests.support.eventually import eventually

pytestmark = pytest.mark.postgres


@pytest.fixture
def connections(postgres_url: str) -> Iterator[ThreadConnections]:
    engine = make_engine(postgres_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    kept = ThreadConnections(engine)
    yield kept
    kept.close()
    engine.dispose()


def _backend(held: Held) -> int:
    held.cursor.execute("SELECT pg_backend_pid()")
    row = held.cursor.fetchone()
    assert row is not None
    return int(row[0])


def _alive(engine: Engine, pid: int) -> bool:
    with engine.connect() as connection:
        return bool(
            connection.exec_driver_sql(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = %(pid)s", {"pid": pid}
            ).scalar()
        )


def _in_a_thread(connections: ThreadConnections) -> int:
    found: list[int] = []
    worker = threading.Thread(target=lambda: found.append(_backend(connections.get())))
    worker.start()
    worker.join()
    return found[0]


def test_a_thread_keeps_its_connection_and_others_get_their_own(
    connections: ThreadConnections,
) -> None:
    mine = _backend(connections.get())
    assert _backend(connections.get()) == mine
    assert _in_a_thread(connections) != mine


def test_the_connection_is_in_autocommit_as_the_engine_sets_it(
    connections: ThreadConnections,
) -> None:
    assert connections.get().connection.autocommit is True


def test_a_thread_that_ends_closes_its_connection(
    connections: ThreadConnections, postgres_engine: Engine
) -> None:
    pid = _in_a_thread(connections)
    gc.collect()
    eventually(lambda: not _alive(postgres_engine, pid), 10, "the ended thread's backend gone")


def test_a_dropped_connection_is_closed_and_replaced(
    connections: ThreadConnections, postgres_engine: Engine
) -> None:
    held = connections.get()
    first = _backend(held)
    connections.drop(held)
    assert held.connection.closed
    assert _backend(connections.get()) != first
    eventually(lambda: not _alive(postgres_engine, first), 10, "the dropped backend gone")


def test_close_closes_every_thread_connection(connections: ThreadConnections) -> None:
    ready, release = threading.Event(), threading.Event()
    theirs: list[Held] = []

    def hold() -> None:
        theirs.append(connections.get())
        ready.set()
        release.wait(10)

    worker = threading.Thread(target=hold)
    worker.start()
    try:
        assert ready.wait(10)
        mine = connections.get()
        connections.close()
        assert mine.connection.closed
        assert theirs[0].connection.closed
    finally:
        release.set()
        worker.join()
