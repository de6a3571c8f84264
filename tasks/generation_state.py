"""Apply what Rivya says about a generation to our row, in order and never backwards.

The document is parsed on the protocol side (rivyahooks_protocol.generation); this module
only decides what of it the row takes.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from models.base import utcnow
from models.db import dialect_insert
from models.generations import Generation, GenerationStatus, record_change
from models.outbound_wake import record_final_change
from rivyahooks_protocol.generation import GenerationDocument, parse_generation

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


def apply_generation(generation: Generation, document: GenerationDocument) -> bool:
    """Update the row from Rivya's generation document; return False if it was stale.

    Terminal states never change back, and an update older than the one already applied
    (by Rivya's updated_at) never overwrites it.
    """
    if document.status is None:
        log.warning(
            "generation %s: unknown status %r", generation.task_id, document.reported_status
        )
        return False
    status = GenerationStatus(document.status)
    updated_at = document.updated_at
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
    generation.model = document.model
    generation.reserved_credits = document.reserved_credits
    generation.final_credits = document.final_credits
    generation.rivya_created_at = document.created_at or generation.rivya_created_at
    generation.rivya_updated_at = updated_at or generation.rivya_updated_at
    if document.error is not None:
        generation.error_code = document.error.code
        generation.error_message = document.error.message
    if status is GenerationStatus.FAILED and generation.error_code is None:
        # The contract allows a null error on a failed generation; say so instead of nothing.
        generation.error_code = "unknown"
    if status is GenerationStatus.SUCCEEDED and not document.result_urls:
        generation.anomaly = "succeeded with no result URL"
    if status.terminal and generation.finished_at is None:
        generation.finished_at = updated_at or utcnow()
    # Failed at Rivya is a final state apps are told of.
    _changed(generation, final=status is GenerationStatus.FAILED and current is not status)
    return True


def _changed(generation: Generation, *, final: bool = False) -> None:
    session = object_session(generation)
    if session is None:  # a generation outside any session is not stored, nor in the feed
        return
    if final:
        record_final_change(session, generation.task_id)
    else:
        record_change(session, generation.task_id)


def mark_results_stored(generation: Generation) -> None:
    """Record that every output of the generation is stored."""
    if generation.results_stored_at is None:
        generation.results_stored_at = utcnow()
        _changed(generation, final=True)


def record_submitted(session: Session, document: dict[str, Any]) -> Generation:
    """Record a generation we just created, so the poller covers it even if no event comes."""
    generation = lock_generation(session, str(document["id"]))
    apply_generation(generation, parse_generation(document))
    if generation.submitted_at is None:
        generation.submitted_at = utcnow()
        _changed(generation)
    return generation
