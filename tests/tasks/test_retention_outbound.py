"""Retention of outbound messages: old ones whose deliveries all finished go, with everything
under them; a message with a delivery open, or finished within the age, stays."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from models.base import utcnow
from models.outbound import DeliveryStatus, OutboundAttempt, OutboundDelivery, OutboundMessage
from rivyahooks.cli import main
from rivyahooks_foundation.settings import Settings
from storage.files import FileStorage
from tasks.retention import purge
from tests.support.outbound import add_app, add_attempt, add_delivery, add_message

THIRTY_DAYS = dt.timedelta(days=30)


def _store(sessions: sessionmaker[Session]) -> tuple[set[str], set[str]]:
    """Store messages to two apps; return the ids the purge removes and those it keeps."""
    now = utcnow()
    old, recent = now - dt.timedelta(days=40), now - dt.timedelta(days=29)
    gone: set[str] = set()
    kept: set[str] = set()
    with sessions.begin() as session:
        shop, crm = add_app(session, "shop"), add_app(session, "crm")

        def message(
            made: dt.datetime, *deliveries: tuple[DeliveryStatus, dt.datetime | None]
        ) -> str:
            stored = add_message(session, made)
            for app, (status, finished) in zip((shop, crm), deliveries, strict=False):
                delivery = add_delivery(session, stored, app, status, finished_at=finished)
                outcome = "delivered" if status is DeliveryStatus.DELIVERED else "retry"
                add_attempt(session, delivery, finished or made, outcome)
            return stored.id

        # old, and every delivery finished long ago
        gone.add(message(old, (DeliveryStatus.DELIVERED, old), (DeliveryStatus.FAILED, old)))
        gone.add(message(old, (DeliveryStatus.FAILED, old)))
        gone.add(message(old))  # no app wanted it
        # old, but a delivery is still open
        kept.add(message(old, (DeliveryStatus.DELIVERED, old), (DeliveryStatus.PENDING, None)))
        kept.add(message(old, (DeliveryStatus.SENDING, None)))
        # old, but replayed and finished within the age: `apps show` still shows it
        kept.add(message(old, (DeliveryStatus.DELIVERED, recent)))
        # within the age
        kept.add(message(recent, (DeliveryStatus.DELIVERED, recent)))
    return gone, kept


def _rows(sessions: sessionmaker[Session]) -> tuple[set[str], int, int]:
    with sessions() as session:
        return (
            set(session.scalars(select(OutboundMessage.id))),
            int(session.scalar(select(func.count()).select_from(OutboundDelivery)) or 0),
            int(session.scalar(select(func.count()).select_from(OutboundAttempt)) or 0),
        )


def test_purge_removes_old_finished_messages_with_deliveries_and_attempts(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    gone, kept = _store(sessions)
    assert _rows(sessions) == (gone | kept, 8, 8)

    dry = purge(
        sessions,
        FileStorage(tmp_path),
        events_older_than=THIRTY_DAYS,
        results_older_than=None,
        dry_run=True,
    )
    assert (dry.outbound_messages_purged, dry.outbound_deliveries_purged) == (3, 3)
    assert dry.outbound_attempts_purged == 3
    assert _rows(sessions) == (gone | kept, 8, 8)

    summary = purge(
        sessions,
        FileStorage(tmp_path),
        events_older_than=THIRTY_DAYS,
        results_older_than=None,
        batch=2,  # several batches, the last one short
    )

    assert summary.outbound_messages_purged == 3
    assert (summary.outbound_deliveries_purged, summary.outbound_attempts_purged) == (3, 3)
    assert _rows(sessions) == (kept, 5, 5)


def test_the_command_reports_outbound_messages_purged(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    gone, kept = _store(sessions)
    env = settings.to_env()
    runner = CliRunner()

    dry = runner.invoke(main, ["purge", "--older-than", "30d", "--dry-run", "--json"], env=env)
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["outbound_messages_purged"] == len(gone)

    done = runner.invoke(main, ["purge", "--older-than", "30d"], env=env)
    assert done.exit_code == 0, done.output
    assert "purged 3 outbound messages (3 deliveries, 3 attempts) made before" in done.stdout
    assert _rows(sessions)[0] == kept
