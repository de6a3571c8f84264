"""Retention: old finished events go, tombstones answer their redeliveries, nothing else goes."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from click.testing import CliRunner
from flask.testing import FlaskClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from models.base import utcnow
from models.delivery_counts import DeliveryCount, add_counts
from models.event_keys import EventKey
from models.events import EventSource, EventStatus, WebhookEvent
from models.generations import Generation, GenerationOutput, GenerationStatus
from models.inbox import insert_event
from rivyahooks.cli import main
from rivyahooks_foundation.settings import Settings
from storage.files import FileStorage
from tasks.retention import TOMBSTONE_LIFETIME, purge
from tests.conftest import make_event, signed_delivery

OLD = dt.timedelta(days=40)
THIRTY_DAYS = dt.timedelta(days=30)


def store(
    sessions: sessionmaker[Session],
    status: EventStatus,
    age: dt.timedelta = OLD,
    task_id: str | None = None,
) -> str:
    """Store an event in `status`, last changed `age` ago; return its id."""
    event = make_event(task_id)
    with sessions.begin() as session:
        insert_event(
            session,
            event_id=event["id"],
            body=json.dumps(event).encode(),
            source=EventSource.WEBHOOK,
            status=status,
            task_id=event["data"]["id"],
        )
        session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.event_id == event["id"])
            .values(updated_at=utcnow() - age, received_at=utcnow() - age)
        )
    return str(event["id"])


def stored_ids(sessions: sessionmaker[Session]) -> set[str]:
    with sessions() as session:
        return set(session.scalars(select(WebhookEvent.event_id)))


def tombstones(sessions: sessionmaker[Session]) -> set[str]:
    with sessions() as session:
        return set(
            session.scalars(select(EventKey.event_id).where(EventKey.purged_at.is_not(None)))
        )


def test_purge_forgets_only_old_finished_events_and_leaves_tombstones(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    gone = {store(sessions, EventStatus.PROCESSED) for _ in range(5)}
    gone |= {store(sessions, EventStatus.IGNORED) for _ in range(2)}
    # Never purged whatever their age: an operator or a worker still needs them.
    kept = {
        store(sessions, status)
        for status in EventStatus
        if status not in (EventStatus.PROCESSED, EventStatus.IGNORED)
    }
    kept.add(store(sessions, EventStatus.PROCESSED, age=dt.timedelta(days=29)))

    summary = purge(
        sessions,
        FileStorage(tmp_path),
        events_older_than=THIRTY_DAYS,
        results_older_than=None,
        batch=3,  # several batches, the last one short
    )

    assert summary.events_purged == len(gone)
    assert stored_ids(sessions) == kept
    assert tombstones(sessions) == gone


def test_purge_forgets_delivery_counts_as_old_as_the_events(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    now = utcnow().replace(second=0, microsecond=0)
    minutes = {"old": now - dt.timedelta(days=31), "recent": now - dt.timedelta(days=29)}
    with sessions.begin() as session:
        add_counts(session, {(minute, "accepted", ""): 1 for minute in minutes.values()})
    purge(sessions, FileStorage(tmp_path), events_older_than=THIRTY_DAYS, results_older_than=None)
    with sessions() as session:
        assert list(session.scalars(select(DeliveryCount.minute))) == [minutes["recent"]]


def test_dry_run_counts_and_deletes_nothing(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    ids = {store(sessions, EventStatus.PROCESSED) for _ in range(3)}
    summary = purge(
        sessions,
        FileStorage(tmp_path),
        events_older_than=THIRTY_DAYS,
        results_older_than=None,
        dry_run=True,
    )
    assert summary.events_purged == 3
    assert stored_ids(sessions) == ids
    assert tombstones(sessions) == set()


def test_a_purged_events_redelivery_is_a_duplicate(
    client: FlaskClient, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    event = make_event()
    body, headers = signed_delivery(event)
    assert client.post("/webhooks/rivya", data=body, headers=headers).status_code == 202
    with sessions.begin() as session:
        session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.event_id == event["id"])
            .values(status=EventStatus.PROCESSED, updated_at=utcnow() - OLD)
        )
    purge(sessions, FileStorage(tmp_path), events_older_than=THIRTY_DAYS, results_older_than=None)
    assert stored_ids(sessions) == set()

    again = client.post("/webhooks/rivya", data=body, headers=headers)

    assert again.status_code == 200
    assert again.get_json() == {"status": "duplicate"}
    assert stored_ids(sessions) == set()


def bury(sessions: sessionmaker[Session], age: dt.timedelta) -> str:
    """Leave a tombstone purged `age` ago; return its event id."""
    event_id = str(make_event()["id"])
    with sessions.begin() as session:
        session.add(EventKey(event_id=event_id, purged_at=utcnow() - age))
    return event_id


def test_tombstones_expire_once_rivya_cannot_send_their_events_again(
    client: FlaskClient, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    # Rivya redelivers for 3 days and lists events for 30: a month and a day covers both.
    assert dt.timedelta(days=31) <= TOMBSTONE_LIFETIME <= dt.timedelta(days=32)
    expired = {bury(sessions, TOMBSTONE_LIFETIME + dt.timedelta(hours=1)) for _ in range(5)}
    kept = {bury(sessions, TOMBSTONE_LIFETIME - dt.timedelta(hours=1))}
    storage = FileStorage(tmp_path)

    dry = purge(
        sessions, storage, events_older_than=THIRTY_DAYS, results_older_than=None, dry_run=True
    )
    assert dry.tombstones_expired == len(expired)
    assert tombstones(sessions) == expired | kept

    summary = purge(
        sessions, storage, events_older_than=THIRTY_DAYS, results_older_than=None, batch=2
    )

    assert summary.tombstones_expired == len(expired)
    assert tombstones(sessions) == kept
    # A tombstone still within its lifetime answers a redelivery as before.
    body, headers = signed_delivery(make_event(event_id=next(iter(kept))))
    assert client.post("/webhooks/rivya", data=body, headers=headers).status_code == 200


def add_generation(
    sessions: sessionmaker[Session], storage: FileStorage, task_id: str, age: dt.timedelta
) -> str:
    """Store a succeeded generation with one output file, last changed `age` ago."""
    key = f"{task_id}/0000-{'ab' * 32}"
    with storage.staging(f"{task_id}.0") as staged:
        staged.write(b"x" * 10)
        storage.commit(staged, key, None)
    with sessions.begin() as session:
        session.add(Generation(task_id=task_id, status=GenerationStatus.SUCCEEDED))
        session.flush()
        session.add(
            GenerationOutput(
                task_id=task_id,
                index=0,
                size_bytes=10,
                sha256="ab" * 32,
                storage_key=key,
                source_host="cdn",
            )
        )
        session.flush()
        session.execute(
            update(Generation)
            .where(Generation.task_id == task_id)
            .values(updated_at=utcnow() - age)
        )
    return key


def test_results_purge_removes_old_files_and_rows_only(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    storage = FileStorage(tmp_path / "results")
    old = add_generation(sessions, storage, "task_old", OLD)
    recent = add_generation(sessions, storage, "task_recent", dt.timedelta(days=1))
    # Old, but an event for it is still waiting: that event would store it again.
    busy = add_generation(sessions, storage, "task_busy", OLD)
    store(sessions, EventStatus.ENQUEUED, dt.timedelta(0), task_id="task_busy")

    summary = purge(sessions, storage, events_older_than=None, results_older_than=THIRTY_DAYS)

    assert (summary.generations_purged, summary.files_removed, summary.bytes_removed) == (
        1,
        1,
        10,
    )
    assert not storage.exists(old)
    assert storage.exists(recent)
    assert storage.exists(busy)
    with sessions() as session:
        assert set(session.scalars(select(Generation.task_id))) == {"task_recent", "task_busy"}
        assert set(session.scalars(select(GenerationOutput.task_id))) == {
            "task_recent",
            "task_busy",
        }


def test_the_command_purges_with_json_and_refuses_a_typo_age(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    store(sessions, EventStatus.PROCESSED)
    env = settings.to_env()
    runner = CliRunner()

    dry = runner.invoke(main, ["purge", "--older-than", "30d", "--dry-run", "--json"], env=env)
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["events_purged"] == 1

    done = runner.invoke(main, ["purge", "--older-than", "30d"], env=env)
    assert done.exit_code == 0, done.output
    assert "purged 1 events" in done.stdout
    assert "purged 0 tombstones" in done.stdout
    assert stored_ids(sessions) == set()

    typo = runner.invoke(main, ["purge", "--older-than", "30m"], env=env)
    assert typo.exit_code == 2
    assert "less than a day" in typo.output


def test_nothing_is_purged_when_retention_is_off(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    ids = {store(sessions, EventStatus.PROCESSED)}
    env = settings.replace(retention_events_days=0).to_env()
    result = CliRunner().invoke(main, ["purge"], env=env)
    assert result.exit_code == 0, result.output
    assert "events kept" in result.stdout
    assert stored_ids(sessions) == ids
