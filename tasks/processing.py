"""Process one stored event: claim it, fetch its generation from Rivya, store results or errors.

Plain functions called with an event id and the process's Runtime: the Celery task and the
tests call them directly. Each step opens its own short transaction; no transaction stays
open across a network call or a download.

Nothing is left stranded, whatever goes wrong:

- a claim is a compare-and-set that records a short lease (tasks.claims), renewed while
  the attempt runs (tasks.lease); a second claim of an event still running is refused, and
  a worker whose lease lapsed cannot overwrite a newer outcome;
- every exception after the claim, named or not, ends the attempt as a recorded failure
  (tasks.outcomes: `failed` with a due time for the relay, or `dead`), counted against
  PROCESS_MAX_ATTEMPTS;
- the database being unavailable (models.transient) cannot be recorded:
  DatabaseUnavailable tells the task to retry later, resuming the same claim; if that gives
  up too, the unrenewed lease lapses within PROCESS_LEASE_SECONDS and the sweeper recovers
  the event;
- every attempt leaves a row in event_attempts.
"""

from __future__ import annotations

import functools
import logging
import time
from urllib.parse import urlsplit

from sqlalchemy import func, select

from models.base import clip
from models.events import EventStatus
from models.generations import GenerationOutput, insert_output
from models.transient import is_transient
from rivyahooks_foundation.faultpoints import reach
from rivyahooks_foundation.logconfig import bind_contextvars
from rivyahooks_foundation.metrics.worker import (
    DOWNLOAD_BYTES,
    DOWNLOAD_DURATION,
    DOWNLOADS,
    GENERATION_ANOMALIES,
    STORAGE_FULL,
)
from rivyahooks_foundation.tracing import annotate, traced
from rivyahooks_protocol import contract
from rivyahooks_protocol.download import download_result
from rivyahooks_protocol.errors import DownloadError, ResultExpiredError, RivyaError
from rivyahooks_protocol.generation import GenerationDocument, parse_generation
from storage import Storage, StorageFull, output_key
from tasks.claims import Claim, claim_event
from tasks.generation_state import apply_generation, lock_generation, mark_results_stored
from tasks.lease import LeaseKeeper
from tasks.outcomes import (
    DatabaseUnavailable,
    Outcome,
    PermanentFailure,
    StorageFullFailure,
    TransientFailure,
    failure_outcome,
    record_outcome,
)
from tasks.runtime import Runtime

log = logging.getLogger(__name__)

# Expired result URLs are re-fetched at most this often within one attempt.
MAX_URL_REFRESHES = 3


def process_event(runtime: Runtime, event_id: str, *, resume: str | None = None) -> Outcome | None:
    """Process the event; return its outcome, None if this call did not claim it.

    `resume` is the token of a claim this task held when the database failed under it.
    Raises DatabaseUnavailable when the database fails; records every other failure.
    """
    try:
        claim = claim_event(runtime, event_id, resume)
    except Exception as exc:
        if is_transient(exc):
            raise DatabaseUnavailable(resume) from exc
        raise
    if claim is None:
        return None
    bind_contextvars(task_id=claim.task_id)
    try:
        # The lease is short: it is renewed for as long as the attempt runs.
        with LeaseKeeper(runtime, claim):
            reach("worker.claimed")
            outcome = _process_generation(runtime, claim)
    except Exception as exc:
        if is_transient(exc):
            raise DatabaseUnavailable(claim.token) from exc
        outcome = failure_outcome(runtime, claim, exc)
    try:
        record_outcome(runtime, claim, outcome)
    except Exception as exc:
        if is_transient(exc):
            raise DatabaseUnavailable(claim.token) from exc
        raise
    reach("worker.finished")
    if outcome.status is not EventStatus.DEAD:  # record_outcome says why it is dead
        log.info("event %s %s task_id=%s", event_id, outcome.status.value, claim.task_id)
    return outcome


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
        except StorageFull as exc:
            raise storage_full_failure(claim, index, exc) from exc
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
            reserve=functools.partial(ensure_room, storage),
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


# --- a full result storage ------------------------------------------------------------------


def ensure_room(storage: Storage, size: int | None) -> None:
    """Refuse a download the storage has no room for (StorageFull), before it writes a byte."""
    # An unannounced size is checked as 0: a disk already below its free-space floor still
    # refuses, and the write fails on its own when the disk fills.
    storage.ensure_room(size or 0)


def storage_full_failure(claim: Claim, index: int, exc: StorageFull) -> StorageFullFailure:
    """Count and log a storage with no room; return the failure that ends the attempt."""
    STORAGE_FULL.inc()
    log.error("ALERT result storage full task_id=%s index=%d: %s", claim.task_id, index, exc)
    return StorageFullFailure(f"storage full: download {index}: {exc}")
