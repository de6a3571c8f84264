"""Process one stored event: claim it, fetch its generation from Rivya, store results or errors.

Plain functions called with an event id and the process's Runtime: the Celery task and the
tests call them directly. Each step opens its own short transaction; no transaction stays
open across a network call or a download.

Nothing is left stranded, whatever goes wrong:

- a claim is a compare-and-set that records a lease; a second claim of an event still
  running is refused, and every later write is a compare-and-set on the same claim, so a
  worker whose lease lapsed cannot overwrite a newer outcome;
- every exception after the claim, named or not, ends the attempt as a recorded failure
  (`failed` with a due time for the relay, or `dead`), counted against PROCESS_MAX_ATTEMPTS;
- a database error cannot be recorded: DatabaseUnavailable tells the task to retry later,
  resuming the same claim; if that gives up too, the lease lapses and the sweeper recovers
  the event;
- every attempt leaves a row in event_attempts.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import ColumnElement, and_, func, insert, literal, or_, select, update
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from models.base import UTCDateTime, clip, utcnow
from models.events import (
    AttemptOutcome,
    EventAttempt,
    EventStatus,
    WebhookEvent,
    finish_attempt,
    move,
)
from models.generations import GenerationOutput, insert_output
from rivyahooks_foundation.faultpoints import reach
from rivyahooks_foundation.logconfig import bind_contextvars
from rivyahooks_foundation.metrics.worker import (
    DOWNLOAD_BYTES,
    DOWNLOAD_DURATION,
    DOWNLOADS,
    EVENTS_FINISHED,
    GENERATION_ANOMALIES,
)
from rivyahooks_foundation.tracing import annotate, traced
from rivyahooks_protocol import contract
from rivyahooks_protocol.backoff import backoff_seconds
from rivyahooks_protocol.download import download_result
from rivyahooks_protocol.errors import DownloadError, ResultExpiredError, RivyaError
from rivyahooks_protocol.generation import GenerationDocument, parse_generation
from storage import output_key
from tasks.generation_state import apply_generation, lock_generation, mark_results_stored
from tasks.runtime import Runtime

log = logging.getLogger(__name__)

# Expired result URLs are re-fetched at most this often within one attempt.
MAX_URL_REFRESHES = 3
# No attempt of the worker waits longer than this, whatever the attempt or Retry-After.
BACKOFF_MAX_SECONDS = 300.0
# Errors of the database connection itself: retrying later may succeed. Anything else the
# database raises (a refused value, a broken constraint) is a failure of the attempt.
TRANSIENT_DATABASE_ERRORS = (OperationalError, InterfaceError)
E = WebhookEvent


class PermanentFailure(Exception):
    """Retrying cannot help: the event ends `dead` with this reason."""


class TransientFailure(Exception):
    """Retrying may help; `retry_after` is the server's hint in seconds, if any."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class DatabaseUnavailable(Exception):
    """The database failed; run the task again later, resuming the claim `resume` (if any)."""

    def __init__(self, resume: str | None) -> None:
        super().__init__("database unavailable")
        self.resume = resume


@dataclass(frozen=True)
class Outcome:
    status: EventStatus
    reason: str | None = None
    outputs_stored: int = 0
    retry_after: float | None = None  # the server's hint for the next attempt, if it gave one


@dataclass(frozen=True)
class Claim:
    """This worker's hold on an event for one attempt."""

    pk: int
    event_id: str
    task_id: str
    token: str
    number: int  # of this attempt, over the event's life
    attempts: int  # counted against PROCESS_MAX_ATTEMPTS, this one included
    deadline: float  # time.monotonic() by which every download must be over


def process_event(runtime: Runtime, event_id: str, *, resume: str | None = None) -> Outcome | None:
    """Process the event; return its outcome, None if this call did not claim it.

    `resume` is the token of a claim this task held when the database failed under it.
    Raises DatabaseUnavailable when the database fails; records every other failure.
    """
    try:
        claim = claim_event(runtime, event_id, resume)
    except TRANSIENT_DATABASE_ERRORS as exc:
        raise DatabaseUnavailable(resume) from exc
    if claim is None:
        return None
    bind_contextvars(task_id=claim.task_id)
    try:
        reach("worker.claimed")
        outcome = _process_generation(runtime, claim)
    except TRANSIENT_DATABASE_ERRORS as exc:
        raise DatabaseUnavailable(claim.token) from exc
    except Exception as exc:
        outcome = _failure_outcome(runtime, claim, exc)
    try:
        _finish(runtime, claim, outcome)
    except TRANSIENT_DATABASE_ERRORS as exc:
        raise DatabaseUnavailable(claim.token) from exc
    reach("worker.finished")
    if outcome.status is not EventStatus.DEAD:  # _finish says why it is dead
        log.info("event %s %s task_id=%s", event_id, outcome.status.value, claim.task_id)
    return outcome


# --- claims --------------------------------------------------------------------------------


def _claimable(now: dt.datetime) -> ColumnElement[bool]:
    """SQL for what a worker may claim now (claimable_status says the same in Python)."""
    return or_(
        E.status.in_([EventStatus.RECEIVED, EventStatus.ENQUEUED]),
        and_(E.status == EventStatus.FAILED, E.next_attempt_at <= now),
        and_(E.status == EventStatus.PROCESSING, E.lease_expires_at <= now),
    )


def claimable_status(event: WebhookEvent, now: dt.datetime) -> bool:
    """Return True if a worker may claim the event now (as _claimable, for a loaded row)."""
    if event.status in (EventStatus.RECEIVED, EventStatus.ENQUEUED):
        return True
    if event.status is EventStatus.FAILED:
        return event.next_attempt_at is not None and event.next_attempt_at <= now
    if event.status is EventStatus.PROCESSING:
        return event.lease_expires_at is not None and event.lease_expires_at <= now
    return False


def claim_event(runtime: Runtime, event_id: str, resume: str | None = None) -> Claim | None:
    """Claim the event for one attempt, or return None (and say why in the log)."""
    now = utcnow()
    lease = now + dt.timedelta(seconds=runtime.limits.lease)
    deadline = time.monotonic() + runtime.limits.downloads
    returned = (E.id, E.task_id, E.attempts)
    with runtime.sessions.begin() as session:
        if resume is not None:
            resumed = session.execute(
                update(E)
                .where(
                    E.event_id == event_id,
                    E.status == EventStatus.PROCESSING,
                    E.claim_token == resume,
                )
                .values(lease_expires_at=lease, updated_at=now)
                .returning(*returned)
            ).first()
            if resumed is not None:
                number = session.scalar(
                    select(func.max(EventAttempt.number)).where(EventAttempt.event_id == event_id)
                )
                log.info("event %s: resuming attempt %s after a database error", event_id, number)
                pk, task_id, attempts = resumed
                assert task_id is not None  # a claim is only ever made with a task id
                return Claim(pk, event_id, task_id, resume, number or 1, attempts, deadline)
        token = uuid.uuid4().hex
        claimed = session.execute(
            move(
                EventStatus.PROCESSING,
                E.event_id == event_id,
                _claimable(now),
                E.task_id.is_not(None),
                E.attempts < runtime.settings.process_max_attempts,
                attempts=E.attempts + 1,
                claim_token=token,
                lease_expires_at=lease,
                started_at=now,
                finished_at=None,
                next_attempt_at=None,
                status_reason=None,
                updated_at=now,
            ).returning(*returned)
        ).first()
        if claimed is None:
            _not_claimed(session, runtime, event_id, now)
            return None
        # A lapsed lease left its attempt open: the worker was killed or hung.
        session.execute(finish_attempt(event_id, AttemptOutcome.EXPIRED, _EXPIRED_ERROR, now))
        number = session.execute(
            insert(EventAttempt)
            .from_select(
                ["event_id", "number", "worker", "started_at"],
                select(
                    literal(event_id),
                    func.coalesce(func.max(EventAttempt.number), 0) + 1,
                    literal(clip(EventAttempt.worker, runtime.worker)),
                    literal(now, UTCDateTime()),
                ).where(EventAttempt.event_id == event_id),
            )
            .returning(EventAttempt.number)
        ).scalar_one()
    pk, task_id, attempts = claimed
    assert task_id is not None  # the claim's WHERE asks for one
    return Claim(pk, event_id, task_id, token, number, attempts, deadline)


_EXPIRED_ERROR = "the lease expired before the worker finished (killed, or stuck past the limit)"


def _not_claimed(session: Session, runtime: Runtime, event_id: str, now: dt.datetime) -> None:
    """Say why the claim failed; end the event `dead` if it can never be claimed."""
    event = session.scalars(select(E).where(E.event_id == event_id)).one_or_none()
    if event is None:
        log.warning("event %s not found; nothing to process", event_id)
        return
    if not claimable_status(event, now):
        if event.status is EventStatus.PROCESSING:
            log.info(
                "event %s is being processed under another claim until %s; message dropped",
                event_id,
                event.lease_expires_at,
            )
        elif event.status is EventStatus.FAILED:
            log.info(
                "event %s is not due until %s; message dropped", event_id, event.next_attempt_at
            )
        else:
            log.info("event %s already %s; skipping", event_id, event.status.value)
        return
    if event.task_id is None:
        reason = "event has no task id"
    elif event.attempts >= runtime.settings.process_max_attempts:
        reason = f"gave up after {event.attempts} attempts; last error: {event.last_error}"
    else:
        return  # it changed meanwhile; whoever moved it carries it on
    gave_up = session.execute(
        move(
            EventStatus.DEAD,
            E.id == event.id,
            E.status == event.status,
            E.attempts == event.attempts,
            status_reason=clip(E.status_reason, reason),
            finished_at=now,
            claim_token=None,
            lease_expires_at=None,
            next_attempt_at=None,
        )
    ).rowcount  # type: ignore[attr-defined]
    if gave_up:
        session.execute(finish_attempt(event_id, AttemptOutcome.EXPIRED, _EXPIRED_ERROR, now))
        log.error("event %s dead: %s", event_id, reason)
        EVENTS_FINISHED.labels(EventStatus.DEAD.value).inc()


# --- outcomes ------------------------------------------------------------------------------


def _failure_outcome(runtime: Runtime, claim: Claim, exc: Exception) -> Outcome:
    """Turn any exception of an attempt into the outcome to record."""
    if isinstance(exc, PermanentFailure):
        return Outcome(EventStatus.DEAD, str(exc))
    error = str(exc) if isinstance(exc, TransientFailure) else f"{type(exc).__name__}: {exc}"
    if not isinstance(exc, TransientFailure):
        # Not a failure this code anticipated: the traceback is what a developer needs.
        log.exception("event %s attempt %d raised %s", claim.event_id, claim.number, error)
    if claim.attempts >= runtime.settings.process_max_attempts:
        return Outcome(EventStatus.DEAD, f"gave up after {claim.attempts} attempts: {error}")
    retry_after = exc.retry_after if isinstance(exc, TransientFailure) else None
    return Outcome(EventStatus.FAILED, error, retry_after=retry_after)


def _finish(runtime: Runtime, claim: Claim, outcome: Outcome) -> bool:
    """Record the attempt's outcome under its claim; return False if the claim was taken over.

    A failure schedules the next attempt: the relay publishes the event at next_attempt_at.
    """
    now = utcnow()
    values: dict[str, Any] = {
        "finished_at": now,
        "claim_token": None,
        "lease_expires_at": None,
        "status_reason": clip(E.status_reason, outcome.reason),
        "updated_at": now,
    }
    error = None
    retry_at = None
    if outcome.status in (EventStatus.FAILED, EventStatus.DEAD):
        error = outcome.reason
        values["last_error"] = clip(E.last_error, error)
    if outcome.status is EventStatus.FAILED:
        delay = backoff_seconds(
            claim.attempts,
            outcome.retry_after,
            base_seconds=runtime.settings.process_retry_base_seconds,
            max_seconds=BACKOFF_MAX_SECONDS,
        )
        retry_at = now + dt.timedelta(seconds=delay)
        values["next_attempt_at"] = retry_at
        values["status_reason"] = f"attempt {claim.number} failed; retry at {retry_at.isoformat()}"
    with runtime.sessions.begin() as session:
        moved = session.execute(
            move(outcome.status, E.id == claim.pk, E.claim_token == claim.token, **values)
        ).rowcount  # type: ignore[attr-defined]
        session.execute(
            finish_attempt(
                claim.event_id,
                AttemptOutcome(outcome.status.value),
                error,
                now,
                retry_at=retry_at,
                number=claim.number,
            )
        )
    if moved and outcome.status is not EventStatus.FAILED:
        EVENTS_FINISHED.labels(outcome.status.value).inc()
    if not moved:
        log.warning(
            "event %s: attempt %d's claim was taken over (its lease lapsed); outcome %s dropped",
            claim.event_id,
            claim.number,
            outcome.status.value,
        )
    elif outcome.status is EventStatus.FAILED:
        log.warning(
            "event %s attempt %d failed (%s); retry at %s",
            claim.event_id,
            claim.number,
            outcome.reason,
            retry_at,
        )
    elif outcome.status is EventStatus.DEAD:
        log.error("event %s dead: %s", claim.event_id, outcome.reason)
    return bool(moved)


# --- the generation ------------------------------------------------------------------------


@traced("rivya.get_generation")
def _fetch(runtime: Runtime, task_id: str) -> GenerationDocument | None:
    """Return the generation from Rivya, or None when Rivya says it does not exist."""
    try:
        document = runtime.rivya.get_generation(task_id)
    except RivyaError as exc:
        if exc.code == contract.ERROR_NOT_FOUND:
            return None
        if exc.status == 404:
            # Rivya's own 404 always carries not_found; a bare one comes from something else
            # answering at that address (a proxy, a wrong base URL). Not proof of absence.
            raise TransientFailure(
                f"Rivya: HTTP 404 without Rivya's not_found error code ({exc.message}); "
                f"check that RIVYA_API_BASE ({runtime.settings.rivya_api_base}) is Rivya's API"
            ) from exc
        if exc.retryable:
            raise TransientFailure(f"Rivya: {exc}", exc.retry_after) from exc
        raise PermanentFailure(f"Rivya: {exc}") from exc
    return parse_generation(document)


def _process_generation(runtime: Runtime, claim: Claim) -> Outcome:
    task_id = claim.task_id
    document = _fetch(runtime, task_id)
    if document is None:
        # Test events and other accounts' tasks: genuine deliveries with nothing to do.
        return Outcome(EventStatus.IGNORED, "not_found: Rivya has no such generation")
    reach("worker.fetched")

    with runtime.sessions.begin() as session:
        generation = lock_generation(session, task_id)
        apply_generation(generation, document)
        status, anomaly = generation.status.value, generation.anomaly
    reach("worker.applied")

    if status == "failed":
        return Outcome(EventStatus.PROCESSED, "generation failed; error recorded")
    if status != "succeeded":
        # The event says terminal but Rivya does not yet: its state will catch up.
        raise TransientFailure(f"generation {task_id} is still {status}")
    if anomaly:
        log.error("ALERT generation %s succeeded without results: %s", task_id, anomaly)
        GENERATION_ANOMALIES.inc()
        return Outcome(EventStatus.PROCESSED, anomaly)
    stored = store_outputs(runtime, claim, document)
    return Outcome(EventStatus.PROCESSED, None, stored)


def store_outputs(runtime: Runtime, claim: Claim, document: GenerationDocument) -> int:
    """Download and store every output not stored yet; return how many this call stored."""
    task_id = claim.task_id
    urls = document.result_urls
    with runtime.sessions() as session:
        done = set(
            session.scalars(
                select(GenerationOutput.index).where(GenerationOutput.task_id == task_id)
            )
        )
    stored = 0
    refreshes = 0
    index = 0
    while index < len(urls):
        if index in done:
            index += 1
            continue
        try:
            if _store_one(runtime, claim, index, urls[index]):
                stored += 1
            index += 1
        except ResultExpiredError as exc:
            refreshes += 1
            if refreshes > MAX_URL_REFRESHES:
                raise TransientFailure(f"result URL {index} keeps expiring") from exc
            log.info("result URL expired task_id=%s index=%d; re-fetching", task_id, index)
            DOWNLOADS.labels("expired").inc()
            fresh = _fetch(runtime, task_id)
            if fresh is None:
                raise PermanentFailure(f"generation {task_id} vanished at Rivya") from exc
            urls = fresh.result_urls
        except DownloadError as exc:
            DOWNLOADS.labels("failed").inc()
            if exc.retryable:
                raise TransientFailure(
                    f"download {index}: {exc}", getattr(exc, "retry_after", None)
                ) from exc
            raise PermanentFailure(f"download {index}: {exc}") from exc

    with runtime.sessions.begin() as session:
        generation = lock_generation(session, task_id)
        count = session.scalar(select(func.count()).where(GenerationOutput.task_id == task_id))
        if (count or 0) >= len(urls):
            mark_results_stored(generation)
    return stored


@traced("result.download")
def _store_one(runtime: Runtime, claim: Claim, index: int, url: str) -> bool:
    """Download one output, store it and record it; False if another worker won the race."""
    settings = runtime.settings
    storage = runtime.storage
    task_id = claim.task_id
    annotate(task_id=task_id, index=index)
    started = time.perf_counter()
    with storage.staging(f"{task_id}.{index}") as staged:
        result = download_result(
            url,
            staged,
            allowed_hosts=settings.download_allowed_hosts,
            max_bytes=settings.download_max_bytes,
            timeout_seconds=settings.rivya_http_timeout_seconds,
            deadline=claim.deadline,
            http_client=runtime.downloads,
        )
        reach("worker.downloaded")
        key = output_key(task_id, index, result.sha256, result.content_type)
        storage.commit(staged, key, result.content_type)
    reach("worker.stored")
    with runtime.sessions.begin() as session:
        # The unique (task_id, index) constraint decides a race between two events of the
        # same generation: the loser's insert does nothing, and its file is the same file.
        created = insert_output(
            session,
            task_id=task_id,
            index=index,
            content_type=clip(GenerationOutput.content_type, result.content_type),
            size_bytes=result.size,
            sha256=result.sha256,
            storage_key=key,
            source_host=clip(
                GenerationOutput.source_host, result.host or urlsplit(url).hostname or ""
            ),
        )
    reach("worker.recorded")
    DOWNLOAD_DURATION.observe(time.perf_counter() - started)
    DOWNLOAD_BYTES.inc(result.size)
    DOWNLOADS.labels("stored" if created else "already_stored").inc()
    return created
