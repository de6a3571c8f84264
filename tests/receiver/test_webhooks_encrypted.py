"""Encryption at rest: with DATA_ENCRYPTION_KEYS set a delivery's prompt is nowhere on disk
(pg_dump of the real database, the SQLite files), while the pages and commands that read
it still show it."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import Engine, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from models.console_sessions import ConsoleSecret
from models.db import make_engine, make_session_factory
from models.encryption import key_id
from models.events import EventSource, EventStatus, WebhookEvent
from models.inbox import InboxWriter, event_row, insert_event
from models.migrate import upgrade
from models.replay import plan_replay
from rivyahooks.cli import main
from rivyahooks_foundation.settings import Settings
from tests.conftest import SECRET, empty_tables, make_event, signed_delivery
from tests.receiver.console.conftest import ADMIN_TOKEN, READONLY_TOKEN, log_in
from tests.support import services

KEY = os.urandom(32)


def prompt() -> str:
    return f"a violet lighthouse at dusk, oil on canvas {uuid.uuid4().hex}"


def with_prompt(text: str, task_id: str | None = None) -> dict[str, object]:
    event = make_event(task_id=task_id)
    event["data"]["prompt"] = text  # type: ignore[index]
    return event


@pytest.fixture
def keyed(postgres_url: str, tmp_path: Path) -> Iterator[Settings]:
    """Settings on the real PostgreSQL with a data key, on emptied tables."""
    engine = make_engine(postgres_url)
    empty_tables(engine)
    engine.dispose()
    return Settings(
        database_url=postgres_url,
        webhook_secrets=(SECRET,),
        storage_url=f"file://{tmp_path / 'results'}",
        data_encryption_keys=(KEY,),
        console_admin_token=ADMIN_TOKEN,
        console_readonly_token=READONLY_TOKEN,
        console_secure_cookie=False,
    )


def keyed_sessions(settings: Settings) -> tuple[Engine, sessionmaker[Session]]:
    engine = make_engine(settings.database_url, data_keys=settings.data_encryption_keys)
    return engine, make_session_factory(engine)


def pg_dump(url: str) -> bytes:
    """Return the database as `pg_dump` writes it (plain SQL, COPY data, bytea in hex)."""
    binary = services.installed("pg_dump", "apt-get install postgresql-client", "the CI image")
    parts = make_url(url)
    env = {**os.environ, "PGPASSWORD": parts.password or ""}
    command = [binary, "-h", parts.host or "127.0.0.1", "-p", str(parts.port or 5432)]
    command += ["-U", parts.username or "postgres", "--no-owner", parts.database or ""]
    return subprocess.run(command, env=env, check=True, capture_output=True).stdout


def shows(dump: bytes, text: str) -> bool:
    """Return True if the text is in the dump as text (JSON) or as bytea hex."""
    return text.encode() in dump or text.encode().hex().encode() in dump


def test_without_keys_pg_dump_shows_the_prompt(
    postgres_engine: Engine, postgres_url: str, make_app: Callable[[Settings], Flask]
) -> None:
    # The control: the dump check below would see a prompt stored in plain text.
    app = make_app(Settings(database_url=postgres_url, webhook_secrets=(SECRET,)))
    text = prompt()
    body, headers = signed_delivery(with_prompt(text))
    assert app.test_client().post("/webhooks/rivya", data=body, headers=headers).status_code == 202
    assert shows(pg_dump(postgres_url), text)


def test_with_keys_the_prompt_is_nowhere_in_pg_dump_and_every_reader_still_sees_it(
    keyed: Settings, make_app: Callable[[Settings], Flask]
) -> None:
    app = make_app(keyed)
    client = app.test_client()
    text = prompt()
    event = with_prompt(text)
    body, headers = signed_delivery(event)
    assert client.post("/webhooks/rivya", data=body, headers=headers).status_code == 202
    # A quarantined event that the current code understands: replay must read its body.
    engine, sessions = keyed_sessions(keyed)
    quarantined = with_prompt(text)
    with sessions.begin() as session:
        insert_event(
            session,
            event_id=str(quarantined["id"]),
            body=json.dumps(quarantined).encode(),
            source=EventSource.WEBHOOK,
            status=EventStatus.QUARANTINED,
        )
    log_in(client, ADMIN_TOKEN)  # the console makes and stores its session key

    dump = pg_dump(keyed.database_url)
    assert not shows(dump, text)
    assert not shows(dump, "lighthouse")
    assert not shows(dump, str(event["id"]) + '"')  # the body's id, as the body holds it
    assert headers["webhook-signature"].encode() not in dump
    with sessions() as session:
        session_key = session.scalars(select(ConsoleSecret.value)).one()
    assert session_key.hex().encode() not in dump
    assert key_id(KEY).encode() in dump  # the key's id is registered, the key is not
    assert KEY.hex().encode() not in dump
    assert base64.b64encode(KEY) not in dump

    # The console's event page shows the body as before.
    page = client.get(f"/console/events/{event['id']}")
    assert page.status_code == 200
    assert text in page.text
    # `events show` shows the stored headers as before.
    shown = CliRunner().invoke(
        main, ["events", "show", str(event["id"]), "--json"], env=keyed.to_env()
    )
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["headers"]["webhook-id"] == event["id"]
    # Replay parses the stored body.
    with sessions() as session:
        stored = session.scalars(
            select(WebhookEvent).where(WebhookEvent.event_id == quarantined["id"])
        ).one()
        assert stored.body == json.dumps(quarantined).encode()
        step = plan_replay(stored)
    assert step.after is EventStatus.RECEIVED
    assert step.envelope is not None
    assert step.envelope["task_id"] == quarantined["data"]["id"]
    replayed = CliRunner().invoke(
        main, ["replay", str(quarantined["id"]), "--json"], env=keyed.to_env()
    )
    assert replayed.exit_code == 0, replayed.output
    assert json.loads(replayed.output)["replayed"] == 1
    engine.dispose()


def sqlite_files(directory: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(directory.iterdir()) if path.is_file())


@pytest.mark.parametrize("encrypted", [False, True])
def test_the_sqlite_database_files_hold_the_prompt_only_without_keys(
    tmp_path: Path, encrypted: bool
) -> None:
    directory = tmp_path / "db"
    url = f"sqlite:///{directory / 'hooks.sqlite3'}"
    upgrade(url)
    text = prompt()
    inbox = InboxWriter(url, data_keys=(KEY,) if encrypted else ())
    event = with_prompt(text)
    body, headers = signed_delivery(event)
    row = event_row(
        event_id=str(event["id"]),
        body=body,
        source=EventSource.WEBHOOK,
        headers={"webhook-signature": headers["webhook-signature"]},
    )
    assert inbox.store(row)
    inbox.close()
    on_disk = sqlite_files(directory)  # the database, its WAL and shared memory
    assert (text.encode() in on_disk) is not encrypted
    assert (headers["webhook-signature"].encode() in on_disk) is not encrypted
