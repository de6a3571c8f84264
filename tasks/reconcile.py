"""Catch what webhooks missed: read Rivya's event log and poll unfinished generations.

Unseen events enter through the same inbox as webhooks (source `reconcile`), so the same
deduplication and processing follow. They came over the authenticated API, so no signature
applies. Only one reconcile runs at a time, whoever starts it: a row in `reconcile_state` is
the lock, taken with a conditional UPDATE that only one transaction can win.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from models.base import utcnow
from models.db import dialect_insert
from models.events import UNFINISHED_STATUSES, EventSource, EventStatus, WebhookEvent
from models.generations import Generation, GenerationStatus
from models.inbox import insert_event, mark_enqueued
from models.reconcile import ReconcileState
from models.tombstones import EventTombstone
from rivyahooks.metrics.worker import RECONCILE_FOUND
from rivyahooks.rivya import contract
from rivyahooks.rivya.client import RivyaClient
from rivyahooks.rivya.envelope import envelope_from_dict
from rivyahooks.rivya.errors import RivyaError, RivyaNotFound
from rivyahooks.settings import Settings
from tasks.generation_state import lenient_time
from tasks.sweep import send_until_refused

log = logging.getLogger(__name__)

STATE_NAME = "event-log"
# A run that died without releasing the lock frees it after this long.
STALE_LOCK = dt.timedelta(hours=1)
POLL_BATCH = 200
# Synthetic events for generations recovered by polling get ids of this form, so repeated
# polls of the same outcome deduplicate like webhook redeliveries do.
POLL_EVENT_PREFIX = "poll_"

Progress = Callable[[str], None]


class ReconcileBusy(Exception):
    """Another reconcile holds the lock."""


@dataclass
class ReconcileSummary:
    pages_read: int = 0
    events_listed: int = 0
    events_missing: int = 0
    enqueued: int = 0
    generations_polled: int = 0
    generations_recovered: int = 0
    checkpoint_before: str | None = None
    checkpoint_after: str | None = None
    dry_run: bool = False
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _acquire(sessions: sessionmaker[Session]) -> ReconcileState:
    now = utcnow()
    with sessions.begin() as session:
        session.execute(
            dialect_insert(session, ReconcileState)
            .values(name=STATE_NAME, updated_at=now)
            .on_conflict_do_nothing(index_elements=["name"])
        )
    with sessions.begin() as session:
        won = session.execute(
            update(ReconcileState)
            .where(ReconcileState.name == STATE_NAME)
            .where(
                or_(
                    ReconcileState.running_since.is_(None),
                    ReconcileState.running_since < now - STALE_LOCK,
                )
            )
            .values(running_since=now, updated_at=now)
        ).rowcount  # type: ignore[attr-defined]
        if won != 1:
            raise ReconcileBusy("another reconcile is running")
        return session.scalars(
            select(ReconcileState).where(ReconcileState.name == STATE_NAME)
        ).one()


def _release(
    sessions: sessionmaker[Session], summary: ReconcileSummary, checkpoint: dt.datetime | None
) -> None:
    with sessions.begin() as session:
        state = session.get(ReconcileState, STATE_NAME)
        assert state is not None
        state.running_since = None
        state.last_run_at = utcnow()
        if checkpoint is not None and (state.checkpoint is None or checkpoint > state.checkpoint):
            state.checkpoint = checkpoint
        state.last_summary = json.dumps(summary.as_dict())[:2000]


def reconcile(
    sessions: sessionmaker[Session],
    settings: Settings,
    client: RivyaClient,
    enqueue: Callable[[str], None],
    *,
    since: dt.datetime | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> ReconcileSummary:
    """Run both sources once; return what was found. Raises ReconcileBusy or RivyaError."""
    say = progress or (lambda _message: None)
    summary = ReconcileSummary(dry_run=dry_run)
    state = _acquire(sessions)
    newest: dt.datetime | None = None
    try:
        stored_checkpoint = state.checkpoint
        summary.checkpoint_before = _iso(stored_checkpoint)
        start = since or stored_checkpoint
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
            start = start - dt.timedelta(seconds=settings.reconcile_overlap_seconds)
        newest = _read_event_log(sessions, client, enqueue, start, summary, dry_run, say)
        _poll_generations(sessions, settings, client, enqueue, summary, dry_run, say)
    finally:
        _release(sessions, summary, None if dry_run else newest)
        summary.checkpoint_after = _iso(newest) if newest and not dry_run else None
    for warning in summary.warnings:
        log.warning("reconcile: %s", warning)
    log.info("reconcile done %s", json.dumps(summary.as_dict()))
    return summary


def _iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _read_event_log(
    sessions: sessionmaker[Session],
    client: RivyaClient,
    enqueue: Callable[[str], None],
    start: dt.datetime | None,
    summary: ReconcileSummary,
    dry_run: bool,
    say: Progress,
) -> dt.datetime | None:
    pager = client.iter_webhook_events(created_after=start, limit=contract.EVENTS_PAGE_LIMIT_MAX)
    newest: dt.datetime | None = None
    page: list[dict[str, Any]] = []
    pages_seen = 0
    for event in pager:
        if pager.pages != pages_seen and page:
            # A new page started: the previous one is stored before reading on.
            _store_page(sessions, enqueue, page, summary, dry_run)
            page = []
        pages_seen = pager.pages
        page.append(event)
        created = lenient_time(event.get("created_at"))
        if created is not None and (newest is None or created > newest):
            newest = created
        if pager.events % 500 == 0:
            say(f"event log: {pager.events} events read, {summary.events_missing} missing here")
    if page:
        _store_page(sessions, enqueue, page, summary, dry_run)
    summary.pages_read = pager.pages
    summary.events_listed = pager.events
    say(
        f"event log: {summary.pages_read} pages, {summary.events_listed} events, "
        f"{summary.events_missing} missing here"
    )
    return newest


def _store_page(
    sessions: sessionmaker[Session],
    enqueue: Callable[[str], None],
    events: list[dict[str, Any]],
    summary: ReconcileSummary,
    dry_run: bool,
) -> None:
    ids = [e.get("id") for e in events if isinstance(e.get("id"), str)]
    with sessions() as session:
        known = set(
            session.scalars(select(WebhookEvent.event_id).where(WebhookEvent.event_id.in_(ids)))
        )
        # Purged events are known too: their tombstones answer for them.
        known |= set(
            session.scalars(select(EventTombstone.event_id).where(EventTombstone.event_id.in_(ids)))
        )
    missing = [e for e in events if isinstance(e.get("id"), str) and e["id"] not in known]
    summary.events_missing += len(missing)
    if dry_run or not missing:
        return
    created: list[str] = []
    with sessions.begin() as session:
        for event in missing:
            # The log adds delivery_status to the delivered envelope; store the envelope.
            envelope_doc = {k: v for k, v in event.items() if k != "delivery_status"}
            envelope = envelope_from_dict(envelope_doc)
            assert envelope.event_id is not None
            if (
                insert_event(
                    session,
                    event_id=envelope.event_id,
                    body=json.dumps(envelope_doc, separators=(",", ":")).encode(),
                    source=EventSource.RECONCILE,
                    status=EventStatus.QUARANTINED if envelope.problem else EventStatus.RECEIVED,
                    event_type=envelope.event_type,
                    task_id=envelope.task_id,
                    api_version=envelope.api_version,
                    status_reason=envelope.problem,
                )
                and not envelope.problem
            ):
                created.append(envelope.event_id)
    RECONCILE_FOUND.inc(len(created))
    _enqueue_all(sessions, enqueue, created, summary)


def _enqueue_all(
    sessions: sessionmaker[Session],
    enqueue: Callable[[str], None],
    event_ids: list[str],
    summary: ReconcileSummary,
) -> None:
    # Rows are committed first; a broker failure leaves them `received` for the sweeper.
    sent, error = send_until_refused(enqueue, event_ids)
    if error is not None:
        summary.warnings.append(f"broker unavailable ({type(error).__name__}); sweeper retries")
    with sessions.begin() as session:
        mark_enqueued(session, sent)
    summary.enqueued += len(sent)


def _poll_generations(
    sessions: sessionmaker[Session],
    settings: Settings,
    client: RivyaClient,
    enqueue: Callable[[str], None],
    summary: ReconcileSummary,
    dry_run: bool,
    say: Progress,
) -> None:
    cutoff = utcnow() - dt.timedelta(seconds=settings.reconcile_poll_after_seconds)
    with sessions() as session:
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
    recovered: list[str] = []
    for number, task_id in enumerate(task_ids, start=1):
        try:
            document = client.get_generation(task_id)
        except RivyaNotFound:
            log.warning("reconcile: generation %s not found at Rivya", task_id)
            continue
        except RivyaError as exc:
            if not exc.retryable:
                raise
            summary.warnings.append(f"poll of {task_id} failed: {exc.code}")
            continue
        summary.generations_polled += 1
        status = document.get("status")
        if status in contract.TERMINAL_GENERATION_STATUSES:
            summary.generations_recovered += 1
            if not dry_run:
                event_id = _store_polled(sessions, task_id, str(status), document)
                if event_id:
                    recovered.append(event_id)
        if not dry_run:
            with sessions.begin() as session:
                session.execute(
                    update(Generation)
                    .where(Generation.task_id == task_id)
                    .values(last_polled_at=utcnow())
                )
        if number % 50 == 0:
            say(f"polled {number}/{len(task_ids)} unfinished generations")
    RECONCILE_FOUND.inc(len(recovered))
    _enqueue_all(sessions, enqueue, recovered, summary)
    say(
        f"generations: {summary.generations_polled} polled, "
        f"{summary.generations_recovered} found finished"
    )


def _store_polled(
    sessions: sessionmaker[Session], task_id: str, status: str, document: dict[str, Any]
) -> str | None:
    """Record a generation found finished by polling as an inbox event; return its id if new."""
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
    with sessions.begin() as session:
        created = insert_event(
            session,
            event_id=event_id,
            body=json.dumps(envelope, separators=(",", ":")).encode(),
            source=EventSource.RECONCILE,
            event_type=event_type,
            task_id=task_id,
            api_version=contract.API_VERSION,
        )
    return event_id if created else None
