"""Apply what Rivya says about a generation to our row, in order and never backwards."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from models.base import utcnow
from models.db import dialect_insert
from models.feed import record_change
from models.generations import Generation, GenerationStatus
from rivyahooks_protocol.timestamps import lenient_timestamp

log = logging.getLogger(__name__)


def lock_generation(session: Session, task_id: str) -> Generation:
    """Return the generation's row, created if new, locked until the transaction ends.

    Two events for one generation (a webhook and the reconciler) serialize here, in the
    database, whatever their timing.
    """
    session.execute(
        dialect_insert(session, Generation)
        .values(task_id=task_id, status=GenerationStatus.QUEUED)
        .on_conflict_do_nothing(index_elements=["task_id"])
    )
    return session.scalars(
        select(Generation).where(Generation.task_id == task_id).with_for_update()
    ).one()


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def result_urls(document: dict[str, Any]) -> list[str]:
    """Return the generation's result URLs: `urls` when filled, else `primary_url`."""
    result = document.get("result")
    if not isinstance(result, dict):
        return []
    urls = [u for u in result.get("urls") or [] if isinstance(u, str) and u]
    if not urls and isinstance(result.get("primary_url"), str) and result["primary_url"]:
        urls = [result["primary_url"]]
    return urls


def apply_generation(generation: Generation, document: dict[str, Any]) -> bool:
    """Update the row from Rivya's generation object; return False if it was stale.

    Terminal states never change back, and an update older than the one already applied
    (by Rivya's updated_at) never overwrites it.
    """
    try:
        status = GenerationStatus(str(document.get("status")))
    except ValueError:
        log.warning("generation %s: unknown status %r", generation.task_id, document.get("status"))
        return False
    updated_at = lenient_timestamp(document.get("updated_at"))
    current = generation.status
    if current.terminal and status != current:
        log.warning(
            "generation %s: ignoring %s after terminal %s", generation.task_id, status, current
        )
        return False
    if (
        updated_at is not None
        and generation.rivya_updated_at is not None
        and updated_at < generation.rivya_updated_at
    ):
        return False

    generation.status = status
    generation.model = document.get("model") if isinstance(document.get("model"), str) else None
    generation.reserved_credits = _number(document.get("reserved_credits"))
    generation.final_credits = _number(document.get("final_credits"))
    generation.rivya_created_at = (
        lenient_timestamp(document.get("created_at")) or generation.rivya_created_at
    )
    generation.rivya_updated_at = updated_at or generation.rivya_updated_at
    error = document.get("error")
    if isinstance(error, dict):
        generation.error_code = str(error.get("code"))[:100] if error.get("code") else None
        generation.error_message = str(error.get("message") or "")[:4000] or None
    if status is GenerationStatus.FAILED and generation.error_code is None:
        # The contract allows a null error on a failed generation; say so instead of nothing.
        generation.error_code = "unknown"
    if status is GenerationStatus.SUCCEEDED and not result_urls(document):
        generation.anomaly = "succeeded with no result URL"
    if status.terminal and generation.finished_at is None:
        generation.finished_at = updated_at or utcnow()
    _changed(generation)
    return True


def _changed(generation: Generation) -> None:
    session = object_session(generation)
    if session is not None:  # a generation outside any session is not stored, nor in the feed
        record_change(session, generation.task_id)


def mark_results_stored(generation: Generation) -> None:
    """Record that every output of the generation is stored."""
    if generation.results_stored_at is None:
        generation.results_stored_at = utcnow()
        _changed(generation)


def record_submitted(session: Session, document: dict[str, Any]) -> Generation:
    """Record a generation we just created, so the poller covers it even if no event comes."""
    generation = lock_generation(session, str(document["id"]))
    apply_generation(generation, document)
    if generation.submitted_at is None:
        generation.submitted_at = utcnow()
        _changed(generation)
    return generation
