"""The change feed hands out positions in commit order, so a follower never skips a change.

On PostgreSQL, with real concurrent transactions: a transaction that began first and got
the smaller id but commits last still appears after the reader's cursor, and a transaction
that wants a position waits until the one holding the counter has committed.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from models import feed, generations
from models.db import make_session_factory
from models.generations import Generation, insert_output
from rivyahooks_foundation.settings import Settings
from rivyahooks_protocol.generation import parse_generation
from tasks.generation_state import apply_generation, lock_generation
from tests.conftest import SECRET
from tests.support.eventually import eventually

pytestmark = pytest.mark.postgres

TOKEN = "feed-order-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def app(postgres_url: str, postgres_engine: Engine, make_app: Callable[[Settings], Flask]) -> Flask:
    return make_app(
        Settings(database_url=postgres_url, webhook_secrets=(SECRET,), results_api_tokens=(TOKEN,))
    )


@pytest.fixture
def pg_sessions(postgres_engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(postgres_engine)


def change(session: Session, task_id: str, version: int) -> Generation:
    """Apply a Rivya update to the generation, as processing does."""
    generation = lock_generation(session, task_id)
    applied = apply_generation(
        generation,
        parse_generation(
            {
                "id": task_id,
                "status": "processing",
                "model": f"v{version}",
                "updated_at": f"2026-05-11T10:{version // 60:02d}:{version % 60:02d}.000Z",
            }
        ),
    )
    assert applied
    return generation


def read_feed(client: FlaskClient, after: str, limit: int = 1000) -> dict[str, Any]:
    answer = client.get(f"/results/feed?after={after}&limit={limit}", headers=AUTH)
    assert answer.status_code == 200, answer.json
    page: dict[str, Any] = answer.json
    return page


def test_a_transaction_committing_after_a_younger_one_is_not_skipped(
    app: Flask, pg_sessions: sessionmaker[Session]
) -> None:
    client = app.test_client()
    older = pg_sessions()
    younger = pg_sessions()
    try:
        # The older transaction creates its generation first: it gets the smaller id.
        older_id = change(older, "task_older", 1).id
        older.flush()
        younger_id = change(younger, "task_younger", 1).id
        younger.commit()
        assert older_id < younger_id

        first = read_feed(client, "")
        assert [e["task_id"] for e in first["data"]] == ["task_younger"]

        older.commit()  # commits last, with the smaller id
    finally:
        older.close()
        younger.close()

    second = read_feed(client, first["next_cursor"])
    # An order by id (or by a sequence value taken during the transaction) would put the
    # older generation behind the cursor, and the follower would never see it.
    assert [e["task_id"] for e in second["data"]] == ["task_older"]
    assert int(second["next_cursor"]) > int(first["next_cursor"])


def backend_waits_for_a_lock(engine: Engine, pid: int) -> bool:
    with engine.connect() as connection:
        kind = connection.execute(
            text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
        ).scalar_one_or_none()
    return kind == "Lock"


def test_a_position_waits_for_the_commit_of_the_one_before(
    app: Flask, pg_sessions: sessionmaker[Session], postgres_engine: Engine
) -> None:
    client = app.test_client()
    holder = pg_sessions()
    change(holder, "task_first", 1)
    # What the commit hook does first: take a position, and with it the counter's lock.
    generations.record_change(holder, "task_first")
    feed._take_positions(holder)

    second = pg_sessions()
    change(second, "task_second", 1)
    second_pid = second.execute(text("SELECT pg_backend_pid()")).scalar_one()
    committed = threading.Event()
    errors: list[BaseException] = []

    def commit_second() -> None:
        try:
            second.commit()
            committed.set()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=commit_second)
    thread.start()
    try:
        eventually(
            lambda: backend_waits_for_a_lock(postgres_engine, second_pid),
            10,
            "the second commit to wait for the counter",
        )
        assert not committed.is_set()
        assert read_feed(client, "")["data"] == []
        holder.commit()
        thread.join(10)
    finally:
        holder.close()
    second.close()
    assert errors == []
    assert committed.is_set()
    entries = read_feed(client, "")["data"]
    assert [e["task_id"] for e in entries] == ["task_first", "task_second"]


def test_a_follower_ends_with_every_last_change_under_concurrent_writers(
    app: Flask, pg_sessions: sessionmaker[Session]
) -> None:
    client = app.test_client()
    tasks = [f"task_{n}" for n in range(12)]
    writers, writes_each = 4, 30
    last_written: dict[str, int] = {}
    lock = threading.Lock()
    done = threading.Event()
    errors: list[BaseException] = []

    def write(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for number in range(writes_each):
                task_id = rng.choice(tasks)
                version = seed * 1000 + number
                with pg_sessions.begin() as session:
                    generation = lock_generation(session, task_id)
                    generation.model = f"v{version}"
                    generations.record_change(session, task_id)
                with lock:
                    last_written[task_id] = version
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    seen: dict[str, str] = {}
    positions: list[int] = []
    cursor = ""

    def follow() -> None:
        nonlocal cursor
        page = read_feed(client, cursor, limit=5)
        for entry in page["data"]:
            positions.append(int(entry["cursor"]))
            seen[entry["task_id"]] = entry["model"]
        cursor = page["next_cursor"]

    threads = [threading.Thread(target=write, args=(seed,)) for seed in range(1, writers + 1)]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        follow()
    for thread in threads:
        thread.join()
    done.set()
    follow()
    while read_feed(client, cursor)["data"]:
        follow()

    assert errors == []
    assert positions == sorted(positions)
    assert len(positions) == len(set(positions))
    # Each generation's last write was committed after every other write to it, so the
    # follower must have seen exactly that version last.
    with pg_sessions() as session:
        stored = {t: m for t, m in session.execute(select(Generation.task_id, Generation.model))}
    assert seen == stored
    assert {task: f"v{version}" for task, version in last_written.items()} == stored


def test_outputs_of_one_generation_stored_at_once_do_not_deadlock(
    app: Flask, pg_sessions: sessionmaker[Session]
) -> None:
    # Two workers store two outputs of one generation at the same time. Each insert takes a
    # key-share lock on the generation row (the foreign key); taking the feed position must
    # not need a lock that conflicts with the other's key-share, or they deadlock.
    with pg_sessions.begin() as session:
        change(session, "task_shared", 1)
    first, second = pg_sessions(), pg_sessions()
    for index, session in enumerate((first, second)):
        created = insert_output(
            session,
            task_id="task_shared",
            index=index,
            content_type="image/png",
            size_bytes=1,
            sha256="ab" * 32,
            storage_key=f"task_shared/{index}",
            source_host="cdn",
        )
        assert created
    errors: list[BaseException] = []

    def commit(session: Session) -> None:
        try:
            session.commit()
        except BaseException as exc:
            errors.append(exc)
            session.rollback()
        finally:
            session.close()

    threads = [threading.Thread(target=commit, args=(s,)) for s in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    (entry,) = read_feed(app.test_client(), "")["data"]
    assert [o["index"] for o in entry["outputs"]] == [0, 1]
