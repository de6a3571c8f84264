"""Process one stored event: fetch its generation from Rivya, then store results or errors.

Plain functions called with ids: the Celery task, the CLI's replay and the tests call them
directly. Each step opens its own short transaction; no transaction stays open across a
network call or a download.
"""

from __future__ import annotations

import logging
import random
import time
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, sessionmaker

from models.base import utcnow
from models.events import EventStatus, WebhookEvent
from models.generations import GenerationOutput, insert_output
from rivyahooks.logconfig import bind_contextvars
from rivyahooks.metrics.worker import (
    DOWNLOAD_BYTES,
    DOWNLOAD_DURATION,
    DOWNLOADS,
    EVENTS_FINISHED,
    GENERATION_ANOMALIES,
)
from rivyahooks.rivya.client import RivyaClient
from rivyahooks.rivya.download import download_result
from rivyahooks.rivya.errors import (
    DownloadError,
    ResultExpiredError,
    RivyaError,
    RivyaNotFound,
)
from rivyahooks.settings import Settings
from rivyahooks.tracing import annotate, traced
from storage import Storage, open_storage, output_key
from tasks.generation_state import (
    apply_generation,
    lock_generation,
    mark_results_stored,
    result_urls,
)

log = logging.getLogger(__name__)

# Expired result URLs are re-fetched at most this often within one attempt.
MAX_URL_REFRESHES = 3
BACKOFF_MAX_SECONDS = 300.0
# The states from which a worker may (re)start an event. PROCESSING is a redelivery after a
# worker died mid-task; the work is idempotent, so starting over is safe.
STARTABLE = frozenset(
    {EventStatus.RECEIVED, EventStatus.ENQUEUED, EventStatus.PROCESSING, EventStatus.FAILED}
)


class RetryLater(Exception):
    """The attempt failed for a transient reason; run the task again after the delay."""

    def __init__(self, reason: str, delay_seconds: float) -> None:
        super().__init__(reason)
        self.delay_seconds = delay_seconds


class PermanentFailure(Exception):
    """Retrying cannot help: the event ends `dead` with this reason."""


class TransientFailure(Exception):
    """Retrying may help; `retry_after` is the server's hint in seconds, if any."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Outcome:
    status: EventStatus
    reason: str | None = None
    outputs_stored: int = 0


def backoff_seconds(attempt: int, retry_after: float | None, base_seconds: float = 2.0) -> float:
    """Return the delay before the next attempt: exponential with full jitter, >= Retry-After."""
    ceiling = min(BACKOFF_MAX_SECONDS, base_seconds * 2 ** max(0, attempt - 1))
    delay = random.uniform(ceiling / 2, ceiling)
    if retry_after is not None:
        delay = max(delay, min(retry_after, BACKOFF_MAX_SECONDS))
    return delay


def download_client(settings: Settings) -> httpx.Client:
    """Return an HTTP client for result URLs: no API key, no redirects."""
    return httpx.Client(
        follow_redirects=False, timeout=httpx.Timeout(settings.rivya_http_timeout_seconds)
    )


def process_event(
    sessions: sessionmaker[Session],
    settings: Settings,
    event_id: str,
    *,
    client: RivyaClient | None = None,
    http: httpx.Client | None = None,
) -> Outcome | None:
    """Process the event; return its outcome, None if there was nothing to do.

    `client` and `http` let a long-lived process reuse its connections; without them the
    call makes its own and closes them. Raises RetryLater after recording a transient
    failure, unless attempts are exhausted, in which case the event ends `dead` instead.
    """
    task_id = _claim(sessions, event_id)
    if task_id is None:
        return None
    bind_contextvars(task_id=task_id)
    try:
        with ExitStack() as owned:
            # Building a client loads the CA bundle, which costs more CPU than downloading
            # a small result: a worker passes clients it keeps for its lifetime.
            if client is None:
                client = owned.enter_context(RivyaClient.from_settings(settings))
            if http is None:
                http = owned.enter_context(download_client(settings))
            outcome = _process_generation(sessions, settings, client, http, task_id)
    except TransientFailure as exc:
        return _record_transient(sessions, settings, event_id, exc)
    except PermanentFailure as exc:
        outcome = Outcome(EventStatus.DEAD, str(exc))
    _finish(sessions, event_id, outcome)
    if outcome.status is EventStatus.DEAD:
        log.error("event %s dead: %s", event_id, outcome.reason)
    else:
        log.info("event %s %s task_id=%s", event_id, outcome.status.value, task_id)
    return outcome


def _locked_event(event_id: str) -> Select[WebhookEvent]:
    """Select the event row locked until the transaction ends, so status moves serialize."""
    return select(WebhookEvent).where(WebhookEvent.event_id == event_id).with_for_update()


def _claim(sessions: sessionmaker[Session], event_id: str) -> str | None:
    """Move the event to `processing` and count the attempt; return its task id."""
    with sessions.begin() as session:
        event = session.scalars(_locked_event(event_id)).one_or_none()
        if event is None:
            log.warning("event %s not found; nothing to process", event_id)
            return None
        if event.status not in STARTABLE:
            # A duplicate message for an event already finished: acknowledging it is right.
            log.info("event %s already %s; skipping", event_id, event.status.value)
            return None
        if event.task_id is None:
            event.transition(EventStatus.PROCESSING)
            event.transition(EventStatus.DEAD, "event has no task id")
            log.error("event %s dead: event has no task id", event_id)
            EVENTS_FINISHED.labels(EventStatus.DEAD.value).inc()
            return None
        event.transition(EventStatus.PROCESSING)
        event.attempts += 1
        event.started_at = utcnow()
        return event.task_id


def _finish(sessions: sessionmaker[Session], event_id: str, outcome: Outcome) -> None:
    with sessions.begin() as session:
        event = session.scalars(_locked_event(event_id)).one()
        if event.status is not EventStatus.PROCESSING:
            # The sweeper or an operator moved it meanwhile; their state wins.
            return
        event.transition(outcome.status, outcome.reason)
        if outcome.status is EventStatus.DEAD:
            event.last_error = outcome.reason
        event.finished_at = utcnow()
    EVENTS_FINISHED.labels(outcome.status.value).inc()


def _record_transient(
    sessions: sessionmaker[Session], settings: Settings, event_id: str, exc: TransientFailure
) -> Outcome | None:
    with sessions.begin() as session:
        event = session.scalars(_locked_event(event_id)).one()
        event.last_error = str(exc)[:2000]
        if event.status is not EventStatus.PROCESSING:
            return None
        if event.attempts >= settings.process_max_attempts:
            reason = f"gave up after {event.attempts} attempts: {exc}"
            event.transition(EventStatus.DEAD, reason[:2000])
            event.finished_at = utcnow()
            log.error("event %s dead: %s", event_id, reason)
            EVENTS_FINISHED.labels(EventStatus.DEAD.value).inc()
            return Outcome(EventStatus.DEAD, reason)
        event.transition(EventStatus.FAILED, "transient failure; retry scheduled")
        attempts = event.attempts
    delay = backoff_seconds(attempts, exc.retry_after, settings.process_retry_base_seconds)
    log.warning("event %s attempt %d failed (%s); retry in %.1f s", event_id, attempts, exc, delay)
    raise RetryLater(str(exc), delay)


# --- the generation ------------------------------------------------------------------------


@traced("rivya.get_generation")
def _fetch(client: RivyaClient, task_id: str) -> dict[str, Any]:
    try:
        return client.get_generation(task_id)
    except RivyaNotFound:
        raise
    except RivyaError as exc:
        if exc.retryable:
            raise TransientFailure(f"Rivya: {exc}", exc.retry_after) from exc
        raise PermanentFailure(f"Rivya: {exc}") from exc


def _process_generation(
    sessions: sessionmaker[Session],
    settings: Settings,
    client: RivyaClient,
    http: httpx.Client,
    task_id: str,
) -> Outcome:
    try:
        document = _fetch(client, task_id)
    except RivyaNotFound as exc:
        # Test events and other accounts' tasks: genuine deliveries with nothing to do.
        return Outcome(EventStatus.IGNORED, f"not_found: {exc.message}"[:500])

    with sessions.begin() as session:
        generation = lock_generation(session, task_id)
        apply_generation(generation, document)
        status, anomaly = generation.status.value, generation.anomaly

    if status == "failed":
        return Outcome(EventStatus.PROCESSED, "generation failed; error recorded")
    if status != "succeeded":
        # The event says terminal but Rivya does not yet: its state will catch up.
        raise TransientFailure(f"generation {task_id} is still {status}")
    if anomaly:
        log.error("ALERT generation %s succeeded without results: %s", task_id, anomaly)
        GENERATION_ANOMALIES.inc()
        return Outcome(EventStatus.PROCESSED, anomaly)
    stored = store_outputs(sessions, settings, client, http, task_id, document)
    return Outcome(EventStatus.PROCESSED, None, stored)


def store_outputs(
    sessions: sessionmaker[Session],
    settings: Settings,
    client: RivyaClient,
    http: httpx.Client,
    task_id: str,
    document: dict[str, Any],
) -> int:
    """Download and store every output not stored yet; return how many this call stored."""
    storage = open_storage(settings)
    urls = result_urls(document)
    with sessions() as session:
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
            if _store_one(sessions, settings, storage, http, task_id, index, urls[index]):
                stored += 1
            index += 1
        except ResultExpiredError as exc:
            refreshes += 1
            if refreshes > MAX_URL_REFRESHES:
                raise TransientFailure(f"result URL {index} keeps expiring") from exc
            log.info("result URL expired task_id=%s index=%d; re-fetching", task_id, index)
            DOWNLOADS.labels("expired").inc()
            urls = result_urls(_fetch(client, task_id))
        except DownloadError as exc:
            DOWNLOADS.labels("failed").inc()
            if exc.retryable:
                raise TransientFailure(
                    f"download {index}: {exc}", getattr(exc, "retry_after", None)
                ) from exc
            raise PermanentFailure(f"download {index}: {exc}") from exc

    with sessions.begin() as session:
        generation = lock_generation(session, task_id)
        count = session.scalar(select(func.count()).where(GenerationOutput.task_id == task_id))
        if (count or 0) >= len(urls):
            mark_results_stored(generation)
    return stored


@traced("result.download")
def _store_one(
    sessions: sessionmaker[Session],
    settings: Settings,
    storage: Storage,
    http: httpx.Client,
    task_id: str,
    index: int,
    url: str,
) -> bool:
    """Download one output, store it and record it; False if another worker won the race."""
    annotate(task_id=task_id, index=index)
    started = time.perf_counter()
    with storage.staging(f"{task_id}.{index}") as staged:
        result = download_result(
            url,
            staged,
            allowed_hosts=settings.download_allowed_hosts,
            max_bytes=settings.download_max_bytes,
            timeout_seconds=settings.rivya_http_timeout_seconds,
            http_client=http,
        )
        key = output_key(task_id, index, result.sha256, result.content_type)
        storage.commit(staged, key, result.content_type)
    with sessions.begin() as session:
        # The unique (task_id, index) constraint decides a race between two events of the
        # same generation: the loser's insert does nothing, and its file is the same file.
        created = insert_output(
            session,
            task_id=task_id,
            index=index,
            content_type=result.content_type,
            size_bytes=result.size,
            sha256=result.sha256,
            storage_key=key,
            source_host=result.host or urlsplit(url).hostname or "",
        )
    DOWNLOAD_DURATION.observe(time.perf_counter() - started)
    DOWNLOAD_BYTES.inc(result.size)
    DOWNLOADS.labels("stored" if created else "already_stored").inc()
    return created
