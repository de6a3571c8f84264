"""`keys rotate` moves every stored value to the first key while deliveries keep arriving,
and the old key can then be removed."""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from models.console_sessions import ConsoleSecret, session_key
from models.data_keys import SEALED_COLUMNS, MissingDataKey, check_data_keys, registered_ids
from models.db import make_engine, make_session_factory
from models.encryption import key_id
from models.events import EventSource, WebhookEvent
from models.inbox import InboxWriter, event_row
from rivyahooks.cli import main
from rivyahooks_foundation.settings import Settings
from tests.conftest import SECRET

OLD, NEW = os.urandom(32), os.urandom(32)


@pytest.fixture
def base(postgres_engine: Engine, postgres_url: str) -> Settings:
    return Settings(database_url=postgres_url, webhook_secrets=(SECRET,))


def store(inbox: InboxWriter, n: int, prefix: str) -> dict[str, bytes]:
    bodies = {}
    for _ in range(n):
        event_id = f"{prefix}_{uuid.uuid4().hex}"
        body = json.dumps({"id": event_id, "data": {"prompt": f"a quiet harbour {event_id}"}})
        bodies[event_id] = body.encode()
        inbox.store(
            event_row(
                event_id=event_id,
                body=bodies[event_id],
                source=EventSource.WEBHOOK,
                headers={"webhook-id": event_id},
            )
        )
    return bodies


@contextmanager
def sessions_with(settings: Settings, *keys: bytes) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(settings.database_url, data_keys=keys)
    try:
        yield make_session_factory(engine)
    finally:
        engine.dispose()


def count_where(engine: Engine, condition_of: str, kid: str | None = None) -> int:
    """Return how many stored values are plain (`plain`) or under key `kid` (`under`)."""
    total = 0
    with engine.connect() as connection:
        for sealed in SEALED_COLUMNS:
            condition = sealed.plain() if condition_of == "plain" else sealed.under(kid or "")
            total += int(
                connection.scalar(
                    select(func.count()).select_from(sealed.column.table).where(condition)
                )
                or 0
            )
    return total


def test_rotate_moves_every_row_to_the_new_key_while_deliveries_arrive(base: Settings) -> None:
    plain_inbox = InboxWriter(base.database_url)
    bodies = store(plain_inbox, 40, "plain")  # stored before encryption was turned on
    plain_inbox.close()
    old = base.replace(data_encryption_keys=(OLD,))
    check_data_keys(old)  # a role's start registers the key it seals with
    old_inbox = InboxWriter(base.database_url, data_keys=(OLD,))
    bodies |= store(old_inbox, 300, "old")
    old_inbox.close()
    with sessions_with(base, OLD) as sessions, sessions.begin() as session:
        secret = session_key(session)

    both = base.replace(data_encryption_keys=(NEW, OLD))
    check_data_keys(both)  # the roles restarted with the new key first
    arriving: dict[str, bytes] = {}
    stop = threading.Event()
    errors: list[BaseException] = []

    def deliveries() -> None:
        inbox = InboxWriter(base.database_url, data_keys=(NEW, OLD))
        try:
            while not stop.is_set():
                arriving.update(store(inbox, 5, "live"))
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)
        finally:
            inbox.close()

    thread = threading.Thread(target=deliveries)
    thread.start()
    try:
        result = CliRunner().invoke(
            main, ["keys", "rotate", "--json", "--batch", "25"], env=both.to_env()
        )
    finally:
        stop.set()
        thread.join(30)
    assert not errors
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["sealing_id"] == key_id(NEW)
    assert report["resealed"] >= 341  # 340 events and the console's key, at least
    assert report["retired"] == [key_id(OLD)]
    assert arriving, "no delivery arrived during the rotation"

    engine = make_engine(base.database_url)
    assert count_where(engine, "plain") == 0
    assert count_where(engine, "under", key_id(OLD)) == 0
    with engine.connect() as connection:
        assert registered_ids(connection) == [key_id(NEW)]
    engine.dispose()

    # The old key can go: a start with the new key alone works and reads every row.
    new_only = base.replace(data_encryption_keys=(NEW,))
    check_data_keys(new_only)
    with sessions_with(base, NEW) as sessions, sessions() as session:
        stored = {
            event_id: body
            for event_id, body in session.execute(select(WebhookEvent.event_id, WebhookEvent.body))
        }
        assert session.scalars(select(ConsoleSecret.value)).one() == secret
    assert stored == bodies | arriving
    # A start with the old key alone fails, naming the key it lacks.
    with pytest.raises(MissingDataKey, match=key_id(NEW)):
        check_data_keys(base.replace(data_encryption_keys=(OLD,)))


def test_a_dry_run_counts_and_changes_nothing_and_a_second_run_finds_nothing(
    base: Settings,
) -> None:
    inbox = InboxWriter(base.database_url, data_keys=(OLD,))
    store(inbox, 12, "old")
    inbox.close()
    both = base.replace(data_encryption_keys=(NEW, OLD)).to_env()
    dry = CliRunner().invoke(main, ["keys", "rotate", "--dry-run", "--json"], env=both)
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.output)["resealed"] == 12
    engine = make_engine(base.database_url)
    assert count_where(engine, "under", key_id(OLD)) == 24  # bodies and headers
    real = CliRunner().invoke(main, ["keys", "rotate"], env=both)
    assert real.exit_code == 0, real.output
    assert f"re-encrypted 12 of 12 rows under key id {key_id(NEW)}" in real.output
    again = CliRunner().invoke(main, ["keys", "rotate", "--json"], env=both)
    assert json.loads(again.output)["resealed"] == 0
    assert count_where(engine, "under", key_id(OLD)) == 0
    engine.dispose()


def test_rotate_without_a_key_is_a_configuration_error(base: Settings) -> None:
    result = CliRunner().invoke(main, ["keys", "rotate"], env=base.to_env())
    assert result.exit_code == 2
    assert "DATA_ENCRYPTION_KEYS is not set" in result.output
