"""Catch what webhooks missed: read Rivya's event log and poll unfinished generations.

Unseen events enter through the same inbox as webhooks (source `reconcile`), so the same
deduplication follows, and the relay publishes them like any other. They came over the
authenticated API, so no signature applies. Each page of the log is stored with one
multi-row INSERT. An entry this code cannot use is stored `quarantined` (under a synthetic
id when it has none) for an operator to see, and the run goes on.

Only one reconcile runs at a time, whoever starts it: a row in `reconcile_state` is the
lock, taken with a conditional UPDATE that only one transaction can win. On PostgreSQL an
advisory lock held by the run's connection guards it too, so a run that was killed frees
the lock at once instead of after STALE_LOCK; not behind a transaction pooler
(DATABASE_POOLER=pgbouncer), where a session's advisory lock would stay on whichever server
connection took it, and the next run, handed another, would find the reconcile busy for good.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Connection, func, or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from models.base import utcnow
from models.db import dialect_insert
from models.event_keys import EventKey
from models.events import UNFINISHED_STATUSES, EventSource, EventStatus, WebhookEvent
from models.generations import Generation, GenerationStatus
from models.inbox import event_row, store_events
from models.reconcile import ReconcileState
from rivyahooks_foundation.faultpoints import reach
from rivyahooks_foundation.metrics.worker import RECONCILE_FOUND
from rivyahooks_protocol import contract
from rivyahooks_protocol.envelope import envelope_from_dict
from rivyahooks_protocol.errors import RivyaError
from rivyahooks_protocol.timestamps import lenient_timestamp
from tasks.runtime import Runtime

log = logging.getLogger(__name__)

STATE_NAME = "event-log"
# The checkpoint as it stood when the last deep pass started, and when that was.
DEEP_STATE_NAME = "event-log-deep"
# A run that died without releasing the lock frees it after this long (SQLite; on
# PostgreSQL the advisory lock goes with the dead run's connection).
STALE_LOCK = dt.timedelta(hours=1)
# Any constant both sides agree on; it names the reconcile among advisory locks.
ADVISORY_LOCK_KEY = 0x52495659  # "RIVY"
POLL_BATCH = 200
# Synthetic events for generations recovered by polling get ids of this form, so repeated
# polls of the same outcome deduplicate like webhook redeliveries do.
POLL_EVENT_PREFIX = "poll_"
# Log entries without a usable id are stored under this prefix and the entry's hash, so the
# same entry read again (the overlap re-reads it) is stored once.
UNUSABLE_EVENT_PREFIX = "unusable:sha256:"

Progress = Callable[[str], None]


class ReconcileBusy(Exception):
    """Another reconcile holds the lock."""


@dataclass
class ReconcileSummary:
    pages_read: int = 0
    events_listed: int = 0
    events_missing: int = 0
    # New events stored `received`: the relay publishes them.
    stored: int = 0
    # Log entries this code cannot use, stored `quarantined` for an operator.
    unusable: int = 0
    generations_polled: int = 0
    generations_recovered: int = 0
    checkpoint_before: str | None = None
    checkpoint_after: str | None = None
    # A deep pass re-reads the whole overlap since the last deep pass; the others stop at
    # the first page made only of events stored here and older than the checkpoint.
    deep_pass: bool = False
    stopped_early: bool = False
    dry_run: bool = False
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@contextmanager
def _lock(runtime: Runtime) -> Iterator[ReconcileState]:
    """Hold the reconcile lock for the run; yield the state row as it was."""
    sessions = runtime.sessions
    now = utcnow()
    with sessions.begin() as session:
        session.execute(
            dialect_insert(session, ReconcileState)
            .values(name=STATE_NAME, updated_at=now)
            .on_conflict_do_nothing(index_elements=["name"])
        )
    with runtime.engine.connect() as holder:
        advisory = holder.dialect.name == "postgresql" and not runtime.settings.transaction_pooling
        if advisory and not _try_advisory_lock(holder):
            raise ReconcileBusy("another reconcile is running")
        try:
            with sessions.begin() as session:
                taking = update(ReconcileState).where(ReconcileState.name == STATE_NAME)
                if not advisory:
                    taking = taking.where(
                        or_(
                            ReconcileState.running_since.is_(None),
                            ReconcileState.running_since < now - STALE_LOCK,
                        )
                    )
                taken = session.execute(taking.values(running_since=now, updated_at=now))
                if taken.rowcount != 1:  # type: ignore[attr-defined]
                    raise ReconcileBusy("another reconcile is running")
                state = session.scalars(
                    select(ReconcileState).where(ReconcileState.name == STATE_NAME)
                ).one()
            yield state
        finally:
            if advisory:
                _advisory_unlock(holder)


def _try_advisory_lock(connection: Connection) -> bool:
    got = connection.execute(select(func.pg_try_advisory_lock(ADVISORY_LOCK_KEY))).scalar()
    connection.commit()
    return bool(got)


def _advisory_unlock(connection: Connection) -> None:
    try:
        connection.execute(select(func.pg_advisory_unlock(ADVISORY_LOCK_KEY)))
        connection.commit()
    except SQLAlchemyError:
        # A pooled connection must not keep holding the lock: close it for good instead.
        connection.invalidate()


def _release(runtime: Runtime, summary: ReconcileSummary, checkpoint: dt.datetime | None) -> None:
    with runtime.sessions.begin() as session:
        state = session.get(ReconcileState, STATE_NAME)
        assert state is not None
        state.running_since = None
        state.last_run_at = utcnow()
        if checkpoint is not None and (state.checkpoint is None or checkpoint > state.checkpoint):
            state.checkpoint = checkpoint
        state.last_summary = json.dumps(summary.as_dict())[:2000]


def reconcile(
    runtime: Runtime,
    *,
    since: dt.datetime | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> ReconcileSummary:
    """Run both sources once; return what was found. Raises ReconcileBusy or RivyaError."""
    say = progress or (lambda _message: None)
    summary = ReconcileSummary(dry_run=dry_run)
    newest: dt.datetime | None = None
    with _lock(runtime) as state:
        try:
            stored_checkpoint = state.checkpoint
            summary.checkpoint_before = _iso(stored_checkpoint)
            deep_checkpoint = _deep_pass_due(runtime, since, stored_checkpoint)
            summary.deep_pass = (
                since is not None or stored_checkpoint is None or deep_checkpoint is not None
            )
            start = since or deep_checkpoint or stored_checkpoint
            if start is not None:
                retention = dt.timedelta(days=contract.EVENTS_RETENTION_DAYS)
                if utcnow() - start > retention:
                    summary.warnings.append(
                        f"checkpoint {_iso(start)} is older than the event log's retention "
                        f"({contract.EVENTS_RETENTION_DAYS} days): events in between may be "
                        "gone from the log; unfinished generations are still polled"
                    )
                # Read back over the overlap window: an event written late with an earlier
                # created_at would otherwise fall behind the checkpoint and never be seen.
                start = start - dt.timedelta(seconds=runtime.settings.reconcile_overlap_seconds)
            stop_below = None if summary.deep_pass else stored_checkpoint
            newest = _read_event_log(runtime, start, stop_below, summary, dry_run, say)
            if summary.deep_pass and not dry_run:
                _deep_pass_done(runtime, stored_checkpoint or newest)
            _poll_generations(runtime, summary, dry_run, say)
        finally:
            _release(runtime, summary, None if dry_run else newest)
            summary.checkpoint_after = _iso(newest) if newest and not dry_run else None
    for warning in summary.warnings:
        log.warning("reconcile: %s", warning)
    log.info("reconcile done %s", json.dumps(summary.as_dict()))
    return summary


def _iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _deep_pass_due(
    runtime: Runtime, since: dt.datetime | None, checkpoint: dt.datetime | None
) -> dt.datetime | None:
    """Return where a deep pass starts (before the overlap) if one is due now, else None.

    An event Rivya writes late lands behind the checkpoint, anywhere in the overlap. A deep
    pass starts from the checkpoint as it stood when the last deep pass started, so an event
    written since then up to RECONCILE_OVERLAP_SECONDS late is read, however far the
    checkpoint moved in between.
    """
    if since is not None or checkpoint is None:
        return None  # an operator's `--since`, or a first run: the whole window anyway
    with runtime.sessions() as session:
        deep = session.get(ReconcileState, DEEP_STATE_NAME)
    interval = dt.timedelta(seconds=runtime.settings.reconcile_deep_interval_seconds)
    if deep is not None and deep.last_run_at is not None and utcnow() - deep.last_run_at < interval:
        return None
    if deep is None or deep.checkpoint is None:
        return checkpoint
    return min(deep.checkpoint, checkpoint)


def _deep_pass_done(runtime: Runtime, checkpoint: dt.datetime | None) -> None:
    with runtime.sessions.begin() as session:
        session.execute(
            dialect_insert(session, ReconcileState)
            .values(name=DEEP_STATE_NAME, checkpoint=checkpoint, last_run_at=utcnow())
            .on_conflict_do_update(
                index_elements=["name"],
                set_={"checkpoint": checkpoint, "last_run_at": utcnow(), "updated_at": utcnow()},
            )
        )


def _read_event_log(
    runtime: Runtime,
    start: dt.datetime | None,
    stop_below: dt.datetime | None,
    summary: ReconcileSummary,
    dry_run: bool,
    say: Progress,
) -> dt.datetime | None:
    """Store what the log lists from `start` on; return the newest created_at read.

    With `stop_below`, stop after the first page whose events are all stored here already
    and created at or before it: the log is newest first, so what follows was read before.
    """
    pager = runtime.rivya.iter_webhook_events(
        created_after=start, limit=contract.EVENTS_PAGE_LIMIT_MAX
    )
    newest: dt.datetime | None = None
    for page in pager.iter_pages():
        created = [
            lenient_timestamp(event.get("created_at")) if isinstance(event, dict) else None
            for event in page
        ]
        for moment in created:
            if moment is not None and (newest is None or moment > newest):
                newest = moment
        missing = _store_page(runtime, page, summary, dry_run)
        if pager.events % 500 < len(page):
            say(f"event log: {pager.events} events read, {summary.events_missing} missing here")
        if (
            stop_below is not None
            and missing == 0
            and all(c is not None and c <= stop_below for c in created)
        ):
            summary.stopped_early = True
            break
    summary.pages_read = pager.pages
    summary.events_listed = pager.events
    say(
        f"event log: {summary.pages_read} pages, {summary.events_listed} events, "
        f"{summary.events_missing} missing here"
    )
    return newest


def log_entry_row(entry: Any, now: dt.datetime) -> dict[str, Any]:
    """Return the inbox row for one event-log entry; an unusable one is quarantined."""
    document = entry
    if isinstance(entry, dict):
        # The log adds delivery_status to the delivered envelope; store the envelope.
        document = {k: v for k, v in entry.items() if k != "delivery_status"}
    body = json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
    envelope = envelope_from_dict(document)
    event_id = envelope.event_id
    if event_id is None:
        event_id = UNUSABLE_EVENT_PREFIX + hashlib.sha256(body).hexdigest()
    return event_row(
        event_id=event_id,
        body=body,
        source=EventSource.RECONCILE,
        status=EventStatus.QUARANTINED if envelope.problem else EventStatus.RECEIVED,
        event_type=envelope.event_type,
        task_id=envelope.task_id,
        api_version=envelope.api_version,
        status_reason=envelope.problem and f"from the event log: {envelope.problem}",
        now=now,
    )


def _store_page(
    runtime: Runtime, entries: list[Any], summary: ReconcileSummary, dry_run: bool
) -> int:
    """Store a page of the log; return how many of its events were not stored here yet."""
    rows = [log_entry_row(entry, utcnow()) for entry in entries]
    if dry_run:
        ids = [row["event_id"] for row in rows]
        with runtime.sessions() as session:
            known = set(
                session.scalars(select(WebhookEvent.event_id).where(WebhookEvent.event_id.in_(ids)))
            )
            # Purged events are known too: their keys stay (tombstones).
            known |= set(
                session.scalars(select(EventKey.event_id).where(EventKey.event_id.in_(ids)))
            )
        summary.events_missing += len(set(ids) - known)
        return len(set(ids) - known)
    with runtime.sessions.begin() as session:
        new = set(store_events(session, rows))
    reach("reconcile.page_stored")
    summary.events_missing += len(new)
    for row in rows:
        if row["event_id"] not in new:
            continue
        if row["status"] is EventStatus.RECEIVED:
            summary.stored += 1
            RECONCILE_FOUND.inc()
        else:
            summary.unusable += 1
            summary.warnings.append(
                f"event log entry stored quarantined as {row['event_id']}: {row['status_reason']}"
            )
    return len(new)


def _poll_generations(
    runtime: Runtime, summary: ReconcileSummary, dry_run: bool, say: Progress
) -> None:
    cutoff = utcnow() - dt.timedelta(seconds=runtime.settings.reconcile_poll_after_seconds)
    with runtime.sessions() as session:
        task_ids = list(
            session.scalars(
                select(Generation.task_id)
                .where(
                    Generation.status.in_([GenerationStatus.QUEUED, GenerationStatus.PROCESSING])
                )
                .where(Generation.first_seen_at <= cutoff)
                # An event already waiting for this generation (perhaps just read from the
                # log) will settle it; polling it too would only add a redundant event.
                .where(
                    ~select(WebhookEvent.id)
                    .where(WebhookEvent.task_id == Generation.task_id)
                    .where(WebhookEvent.status.in_(UNFINISHED_STATUSES))
                    .exists()
                )
                .order_by(Generation.last_polled_at.asc().nulls_first(), Generation.id)
                .limit(POLL_BATCH)
            )
        )
    for number, task_id in enumerate(task_ids, start=1):
        try:
            document = runtime.rivya.get_generation(task_id)
        except RivyaError as exc:
            if exc.code == contract.ERROR_NOT_FOUND:
                log.warning("reconcile: generation %s not found at Rivya", task_id)
                continue
            if not exc.retryable:
                raise
            summary.warnings.append(f"poll of {task_id} failed: {exc.code}")
            continue
        summary.generations_polled += 1
        status = document.get("status")
        if status in contract.TERMINAL_GENERATION_STATUSES:
            summary.generations_recovered += 1
            if not dry_run and _store_polled(runtime, task_id, str(status), document):
                summary.stored += 1
                RECONCILE_FOUND.inc()
        if not dry_run:
            with runtime.sessions.begin() as session:
                session.execute(
                    update(Generation)
                    .where(Generation.task_id == task_id)
                    .values(last_polled_at=utcnow())
                )
        if number % 50 == 0:
            say(f"polled {number}/{len(task_ids)} unfinished generations")
    say(
        f"generations: {summary.generations_polled} polled, "
        f"{summary.generations_recovered} found finished"
    )


def _store_polled(runtime: Runtime, task_id: str, status: str, document: dict[str, Any]) -> bool:
    """Record a generation found finished by polling as an inbox event; True if it is new."""
    event_id = f"{POLL_EVENT_PREFIX}{task_id}_{status}"[:255]
    event_type = (
        contract.EVENT_GENERATION_SUCCEEDED
        if status == "succeeded"
        else contract.EVENT_GENERATION_FAILED
    )
    envelope = {
        "id": event_id,
        "type": event_type,
        "api_version": contract.API_VERSION,
        "created_at": document.get("updated_at"),
        "object": contract.EVENT_OBJECT,
        contract.EVENT_DATA_KEY: document,
    }
    row = event_row(
        event_id=event_id,
        body=json.dumps(envelope, separators=(",", ":")).encode(),
        source=EventSource.RECONCILE,
        event_type=event_type,
        task_id=task_id,
        api_version=contract.API_VERSION,
    )
    with runtime.sessions.begin() as session:
        return bool(store_events(session, [row]))
