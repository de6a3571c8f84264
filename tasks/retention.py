"""Retention: forget finished events (leaving a tombstone) and, if asked, old results.

Outbound messages go at the events' age once every delivery of them finished
(tasks/outbound_retention.py).

Only `processed` and `ignored` events go: an unfinished, `dead` or `quarantined` one stays
whatever its age, since an operator still has to see it. A purged event's key stays in
event_keys, marked purged (a tombstone): every store inserts the key first, so a late
redelivery or the reconciler reading the event log again is refused by the primary key and
answered as a duplicate, never processed twice, however it races the purge.

A tombstone is needed only while its event can come back: Rivya redelivers for a few days
and keeps its event log, which the reconciler reads, for a month. Once both are past, the
purge drops the tombstone too, so the table does not grow forever in its place.

Work is done in small batches, each a short transaction of its own, so no lock is held
long enough to stall the receiver. The purge never frees an event's key, so there is no
moment where a delivery finds neither the row nor its key; only the tombstone's expiry does,
once the event cannot come back.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import delete, exists, func, literal, select
from sqlalchemy.orm import Session, sessionmaker

from models.base import UTCDateTime
from models.clock import database_now
from models.db import dialect_insert
from models.delivery_counts import forget_counts_before
from models.event_keys import EventKey
from models.events import UNFINISHED_STATUSES, EventStatus, WebhookEvent
from models.generations import Generation, GenerationOutput, GenerationStatus
from rivyahooks_foundation.metrics.worker import PURGED
from rivyahooks_protocol import contract
from storage import Storage
from tasks.outbound_retention import purge_messages

log = logging.getLogger(__name__)

PURGEABLE_EVENTS = (EventStatus.PROCESSED, EventStatus.IGNORED)
FINISHED_GENERATIONS = (GenerationStatus.SUCCEEDED, GenerationStatus.FAILED)
BATCH = 1000
# Both windows count from the event's creation, which comes before its purge; a day more
# for clocks that disagree.
TOMBSTONE_LIFETIME = max(
    dt.timedelta(days=contract.EVENTS_RETENTION_DAYS),
    dt.timedelta(seconds=contract.DELIVERY_RETRY_WINDOW_SECONDS),
) + dt.timedelta(days=1)

Progress = Callable[[str], None]


@dataclass
class PurgeSummary:
    events_before: str | None = None  # the cutoff, ISO-8601
    events_purged: int = 0
    tombstones_before: str | None = None  # the cutoff, ISO-8601
    tombstones_expired: int = 0
    outbound_before: str | None = None  # the cutoff, ISO-8601
    outbound_messages_purged: int = 0
    outbound_deliveries_purged: int = 0
    outbound_attempts_purged: int = 0
    results_before: str | None = None
    generations_purged: int = 0
    files_removed: int = 0
    bytes_removed: int = 0
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _old_events(cutoff: dt.datetime) -> Any:
    # Reads the (status, updated_at) index: no scan of the whole table.
    return (WebhookEvent.status.in_(PURGEABLE_EVENTS)) & (WebhookEvent.updated_at < cutoff)


def _database_now(sessions: sessionmaker[Session]) -> dt.datetime:
    """Return the database's time: ages are measured by it, whichever host purges."""
    with sessions() as session:
        return database_now(session)


def purge_events(
    sessions: sessionmaker[Session],
    older_than: dt.timedelta,
    summary: PurgeSummary,
    *,
    batch: int = BATCH,
    say: Progress | None = None,
) -> None:
    """Delete finished events last changed before now - older_than, keeping tombstones."""
    cutoff = _database_now(sessions) - older_than
    summary.events_before = cutoff.isoformat()
    if summary.dry_run:
        with sessions() as session:
            summary.events_purged = int(
                session.scalar(select(func.count()).where(_old_events(cutoff))) or 0
            )
        return
    while True:
        with sessions.begin() as session:
            # Locked until the batch commits: a replay waits, rather than moving an event
            # whose key was just marked purged.
            ids = list(
                session.scalars(
                    select(WebhookEvent.id)
                    .where(_old_events(cutoff))
                    .limit(batch)
                    .with_for_update(skip_locked=True)
                )
            )
            if not ids:
                return
            purged_at = database_now(session)
            # Copied inside the database: no ids travel back and forth, and the statement
            # is compiled once, not once per batch of a thousand values. An event stored
            # before event_keys existed gets its key here.
            insert = dialect_insert(session, EventKey)
            session.execute(
                insert.from_select(
                    ["event_id", "purged_at"],
                    select(WebhookEvent.event_id, literal(purged_at, UTCDateTime())).where(
                        WebhookEvent.id.in_(ids)
                    ),
                ).on_conflict_do_update(
                    index_elements=["event_id"], set_={"purged_at": insert.excluded.purged_at}
                )
            )
            deleted = session.execute(
                delete(WebhookEvent)
                .where(WebhookEvent.id.in_(ids))
                .execution_options(synchronize_session=False)
            ).rowcount  # type: ignore[attr-defined]
        summary.events_purged += deleted
        PURGED.labels("events").inc(deleted)
        if say:
            say(f"events: {summary.events_purged} purged")
        if len(ids) < batch:
            return


def expire_tombstones(
    sessions: sessionmaker[Session],
    summary: PurgeSummary,
    *,
    batch: int = BATCH,
    say: Progress | None = None,
) -> None:
    """Delete the tombstones of events Rivya can no longer send again (TOMBSTONE_LIFETIME)."""
    cutoff = _database_now(sessions) - TOMBSTONE_LIFETIME
    summary.tombstones_before = cutoff.isoformat()
    old = EventKey.purged_at < cutoff  # the partial index of tombstones; NULL never matches
    if summary.dry_run:
        with sessions() as session:
            summary.tombstones_expired = int(
                session.scalar(select(func.count()).select_from(EventKey).where(old)) or 0
            )
        return
    while True:
        with sessions.begin() as session:
            ids = list(session.scalars(select(EventKey.event_id).where(old).limit(batch)))
            if ids:
                session.execute(delete(EventKey).where(EventKey.event_id.in_(ids)))
        summary.tombstones_expired += len(ids)
        PURGED.labels("tombstones").inc(len(ids))
        if say and ids:
            say(f"tombstones: {summary.tombstones_expired} expired")
        if len(ids) < batch:
            return


def purge_outbound(
    sessions: sessionmaker[Session],
    older_than: dt.timedelta,
    summary: PurgeSummary,
    *,
    batch: int = BATCH,
    say: Progress | None = None,
) -> None:
    """Delete outbound messages made before the cutoff whose deliveries all finished."""
    cutoff = _database_now(sessions) - older_than
    summary.outbound_before = cutoff.isoformat()
    purged = purge_messages(sessions, cutoff, dry_run=summary.dry_run, batch=batch, say=say)
    summary.outbound_messages_purged = purged.messages
    summary.outbound_deliveries_purged = purged.deliveries
    summary.outbound_attempts_purged = purged.attempts
    if not summary.dry_run:
        PURGED.labels("outbound_messages").inc(purged.messages)


def purge_results(
    sessions: sessionmaker[Session],
    storage: Storage,
    older_than: dt.timedelta,
    summary: PurgeSummary,
    *,
    batch: int = BATCH,
    say: Progress | None = None,
) -> None:
    """Delete finished generations last changed before the cutoff, their rows and files.

    A generation that still has an unfinished event is kept: that event would store it anew.
    Rows go first, then files: a crash in between leaves unreferenced files, never rows
    pointing at missing ones.
    """
    cutoff = _database_now(sessions) - older_than
    summary.results_before = cutoff.isoformat()
    last_id = 0
    while True:
        # Walks the primary key once: generations have no index on updated_at.
        with sessions.begin() as session:
            chosen = session.execute(
                select(Generation.id, Generation.task_id)
                .where(Generation.id > last_id)
                .where(Generation.status.in_(FINISHED_GENERATIONS))
                .where(Generation.updated_at < cutoff)
                .where(
                    ~exists().where(
                        (WebhookEvent.task_id == Generation.task_id)
                        & WebhookEvent.status.in_(UNFINISHED_STATUSES)
                    )
                )
                .order_by(Generation.id)
                .limit(batch)
            ).all()
            if not chosen:
                return
            last_id = chosen[-1][0]
            task_ids = [task_id for _, task_id in chosen]
            files = session.execute(
                select(GenerationOutput.storage_key, GenerationOutput.size_bytes).where(
                    GenerationOutput.task_id.in_(task_ids)
                )
            ).all()
            if not summary.dry_run:
                session.execute(
                    delete(GenerationOutput).where(GenerationOutput.task_id.in_(task_ids))
                )
                session.execute(delete(Generation).where(Generation.task_id.in_(task_ids)))
        summary.generations_purged += len(chosen)
        summary.files_removed += len(files)
        summary.bytes_removed += sum(size for _, size in files)
        if not summary.dry_run:
            for key, _ in files:
                storage.delete(key)
            PURGED.labels("results").inc(len(chosen))
        if say:
            say(f"results: {summary.generations_purged} generations, {len(files)} files")
        if len(chosen) < batch:
            return


def purge(
    sessions: sessionmaker[Session],
    storage: Storage,
    *,
    events_older_than: dt.timedelta | None,
    results_older_than: dt.timedelta | None,
    dry_run: bool = False,
    batch: int = BATCH,
    say: Progress | None = None,
) -> PurgeSummary:
    """Run both purges (None skips one); return what was, or would be, removed."""
    summary = PurgeSummary(dry_run=dry_run)
    if events_older_than is not None:
        purge_events(sessions, events_older_than, summary, batch=batch, say=say)
        expire_tombstones(sessions, summary, batch=batch, say=say)
        purge_outbound(sessions, events_older_than, summary, batch=batch, say=say)
        if not dry_run:
            # The console's per-minute delivery counts: one row per minute and outcome,
            # kept as long as the events they counted.
            with sessions.begin() as session:
                forget_counts_before(session, database_now(session) - events_older_than)
    if results_older_than is not None:
        purge_results(sessions, storage, results_older_than, summary, batch=batch, say=say)
    log.info("purge done", extra={"purge": summary.as_dict()})
    return summary
