"""A generation's result files: each downloaded, hashed and stored, then all recorded at once.

The files reach their keys one after another as the attempt downloads them; their rows are
written together at the end, in the transaction that also marks the generation's results
stored: one commit per attempt rather than one per file. Whatever ends the attempt, what is
at its key gets its row: a download that fails after others were stored records those
first, so the next attempt downloads only what is missing. A worker killed in between leaves
files without rows; the next attempt stores them again under the same keys (a key carries
the content's sha256, so it is the same file) and records them.

The unique (task_id, index) constraint decides a race between two events of the same
generation: the loser's insert does nothing, and its files are the same files.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

from sqlalchemy import func, select

from models.base import clip
from models.generations import GenerationOutput, insert_outputs
from rivyahooks_foundation.faultpoints import reach
from rivyahooks_foundation.metrics.worker import (
    DOWNLOAD_BYTES,
    DOWNLOAD_DURATION,
    DOWNLOADS,
    STORAGE_FULL,
)
from rivyahooks_foundation.tracing import annotate, traced
from rivyahooks_protocol.download import download_result
from rivyahooks_protocol.errors import DownloadError, ResultExpiredError
from rivyahooks_protocol.generation import GenerationDocument
from storage import Storage, StorageFull, output_key
from tasks.claims import Claim
from tasks.generation_fetch import fetch_generation
from tasks.generation_state import lock_generation, mark_results_stored
from tasks.outcomes import PermanentFailure, StorageFullFailure, TransientFailure
from tasks.runtime import Runtime

log = logging.getLogger(__name__)

# Expired result URLs are re-fetched at most this often within one attempt.
MAX_URL_REFRESHES = 3


@dataclass(frozen=True)
class StoredOutput:
    """A result file at its key, its row not written yet: the row's values."""

    index: int
    content_type: str | None
    size_bytes: int
    sha256: str
    storage_key: str
    source_host: str | None  # never None: a URL that reached a download has a host


def store_outputs(
    runtime: Runtime, claim: Claim, document: GenerationDocument, done: set[int]
) -> int:
    """Download and store every output not in `done`, then record them; return how many."""
    stored: list[StoredOutput] = []
    total = len(document.result_urls)
    try:
        _download_missing(runtime, claim, document, done, stored)
    except Exception:
        if stored:
            # What is at its key gets its row, whatever ends the attempt (see the docstring).
            record_outputs(runtime, claim.task_id, stored, total)
        raise
    return record_outputs(runtime, claim.task_id, stored, total)


def _download_missing(
    runtime: Runtime,
    claim: Claim,
    document: GenerationDocument,
    done: set[int],
    stored: list[StoredOutput],
) -> None:
    """Store each output not in `done`, in order, appending each to `stored` once at its key."""
    task_id = claim.task_id
    urls = document.result_urls
    refreshes = 0
    index = 0
    while index < len(urls):
        if index in done:
            index += 1
            continue
        try:
            stored.append(_store_one(runtime, claim, index, urls[index]))
        except ResultExpiredError as exc:
            refreshes += 1
            if refreshes > MAX_URL_REFRESHES:
                raise TransientFailure(f"result URL {index} keeps expiring") from exc
            log.info("result URL expired task_id=%s index=%d; re-fetching", task_id, index)
            DOWNLOADS.labels("expired").inc()
            fresh = fetch_generation(runtime, task_id)
            if fresh is None:
                raise PermanentFailure(f"generation {task_id} vanished at Rivya") from exc
            urls = fresh.result_urls
            continue
        except StorageFull as exc:
            raise storage_full_failure(claim, index, exc) from exc
        except DownloadError as exc:
            DOWNLOADS.labels("failed").inc()
            if exc.retryable:
                raise TransientFailure(
                    f"download {index}: {exc}", getattr(exc, "retry_after", None)
                ) from exc
            raise PermanentFailure(f"download {index}: {exc}") from exc
        reach("worker.stored")
        index += 1


@traced("result.download")
def _store_one(runtime: Runtime, claim: Claim, index: int, url: str) -> StoredOutput:
    """Download one output and store it at its key; return what its row will say."""
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
    DOWNLOAD_DURATION.observe(time.perf_counter() - started)
    DOWNLOAD_BYTES.inc(result.size)
    return StoredOutput(
        index=index,
        content_type=clip(GenerationOutput.content_type, result.content_type),
        size_bytes=result.size,
        sha256=result.sha256,
        storage_key=key,
        source_host=clip(GenerationOutput.source_host, result.host or urlsplit(url).hostname or ""),
    )


def record_outputs(runtime: Runtime, task_id: str, stored: list[StoredOutput], total: int) -> int:
    """Write the rows of stored outputs, and mark the generation once all `total` have one.

    Returns how many rows this call wrote; the others were written by a racing event.
    """
    with runtime.sessions.begin() as session:
        generation = lock_generation(session, task_id)
        created = insert_outputs(session, task_id, [asdict(output) for output in stored])
        count = session.scalar(select(func.count()).where(GenerationOutput.task_id == task_id))
        if (count or 0) >= total:
            mark_results_stored(generation)
    reach("worker.recorded")
    DOWNLOADS.labels("stored").inc(len(created))
    DOWNLOADS.labels("already_stored").inc(len(stored) - len(created))
    return len(created)


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
