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

import logging

from models.events import EventStatus
from models.generations import stored_indexes
from models.transient import is_transient
from rivyahooks_foundation.faultpoints import reach
from rivyahooks_foundation.logconfig import bind_contextvars
from rivyahooks_foundation.metrics.worker import GENERATION_ANOMALIES
from tasks.claims import Claim, claim_event
from tasks.generation_fetch import fetch_generation
from tasks.generation_state import apply_generation, lock_generation
from tasks.lease import LeaseKeeper
from tasks.outcomes import (
    DatabaseUnavailable,
    Outcome,
    TransientFailure,
    failure_outcome,
    record_outcome,
)
from tasks.outputs import store_outputs
from tasks.runtime import Runtime

log = logging.getLogger(__name__)


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


def _process_generation(runtime: Runtime, claim: Claim) -> Outcome:
    task_id = claim.task_id
    document = fetch_generation(runtime, task_id)
    if document is None:
        # Test events and other accounts' tasks: genuine deliveries with nothing to do.
        return Outcome(EventStatus.IGNORED, "not_found: Rivya has no such generation")
    reach("worker.fetched")

    with runtime.sessions.begin() as session:
        generation = lock_generation(session, task_id)
        apply_generation(generation, document)
        status, anomaly = generation.status.value, generation.anomaly
        complete = generation.results_stored_at is not None
        # Read under the same lock: the outputs an earlier attempt or event already recorded.
        done = stored_indexes(session, task_id) if status == "succeeded" and not complete else set()
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
    if complete:
        return Outcome(EventStatus.PROCESSED, None, 0)
    stored = store_outputs(runtime, claim, document, done)
    return Outcome(EventStatus.PROCESSED, None, stored)
