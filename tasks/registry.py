"""Every Celery task: thin wrappers that call plain functions with the process's Runtime.

Delivery contract of each, stated where it is declared: called with ids only, results
ignored, explicit stable names (tasks/names.py). No task publishes another: failures are
recorded in the database and the relay publishes the retry when it falls due, so no retry
lives only in the broker.
"""

from __future__ import annotations

import datetime as dt
import logging

from celery import Task, shared_task
from sqlalchemy.exc import SQLAlchemyError

from models.transient import is_transient
from rivyahooks_protocol.backoff import backoff_seconds
from storage import open_storage
from tasks import names
from tasks.outbound_delivery import deliver
from tasks.outcomes import DatabaseUnavailable
from tasks.processing import process_event
from tasks.reconcile import ReconcileBusy, reconcile
from tasks.retention import purge
from tasks.sweep import sweep

log = logging.getLogger(__name__)

# Retries of a task whose database is unavailable: each waits at most
# DATABASE_RETRY_MAX_SECONDS, so a recovered database is noticed within seconds, and together
# they ride out an outage of at least five minutes (60 waits, most of them 5 to 10 s). Past
# them the message is acknowledged; the claim's unrenewed lease lapses within
# PROCESS_LEASE_SECONDS and the sweeper takes the event back.
DATABASE_RETRIES = 60
DATABASE_RETRY_BASE_SECONDS = 1.0
DATABASE_RETRY_MAX_SECONDS = 10.0


@shared_task(
    bind=True,
    name=names.PROCESS_EVENT,
    ignore_result=True,
    # Idempotent (claims, unique outputs), so a message of a worker that died is delivered
    # again rather than lost; its attempt is found by its lapsed lease.
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=DATABASE_RETRIES,
)
def process(self: Task, event_id: str, resume: str | None = None) -> None:
    """Claim the event, fetch its generation from Rivya and store its results."""
    try:
        process_event(self.app.runtime, event_id, resume=resume)
    except DatabaseUnavailable as exc:
        delay = backoff_seconds(
            self.request.retries + 1,
            base_seconds=DATABASE_RETRY_BASE_SECONDS,
            max_seconds=DATABASE_RETRY_MAX_SECONDS,
        )
        cause = exc.__cause__
        log.warning(
            "event %s: database unavailable (%s: %s); retry %d of %d in %.1f s",
            event_id,
            type(cause).__name__,
            str(cause).splitlines()[0] if cause else "",
            self.request.retries + 1,
            DATABASE_RETRIES,
            delay,
        )
        # The retry carries the claim, so it resumes the attempt instead of being refused.
        raise self.retry(
            exc=exc, countdown=delay, kwargs={"event_id": event_id, "resume": exc.resume}
        ) from exc


# Not acks_late: the next beat tick runs it again anyway.
@shared_task(bind=True, name=names.SWEEP_EVENTS, ignore_result=True, acks_late=False)
def sweep_events(self: Task) -> None:
    """Take back events whose worker or message was lost (rows only; the relay publishes)."""
    sweep(self.app.runtime)


# Not acks_late: a reconcile lost with its worker is simply run again by the next beat tick,
# and redelivering a long run on top of the next one would only contend for the lock.
@shared_task(bind=True, name=names.RECONCILE, ignore_result=True, acks_late=False)
def run_reconcile(self: Task) -> None:
    """Read Rivya's event log since the checkpoint and poll unfinished generations."""
    runtime = self.app.runtime
    if not runtime.settings.rivya_api_key:
        log.warning("reconcile skipped: RIVYA_API_KEY is not set")
        return
    try:
        reconcile(runtime)
    except ReconcileBusy:
        log.info("reconcile skipped: another run holds the lock")


def _days(days: int) -> dt.timedelta | None:
    return dt.timedelta(days=days) if days else None


# Not acks_late: a purge lost with its worker is simply run again by the next beat tick, and
# every step of it can be repeated (tombstones are inserted with ON CONFLICT DO NOTHING).
@shared_task(bind=True, name=names.PURGE, ignore_result=True, acks_late=False)
def run_purge(self: Task) -> None:
    """Forget finished events (RETENTION_EVENTS_DAYS) and old results (RETENTION_RESULTS_DAYS)."""
    runtime = self.app.runtime
    settings = runtime.settings
    events, results = _days(settings.retention_events_days), _days(settings.retention_results_days)
    if events is None and results is None:
        return
    purge(
        runtime.sessions,
        open_storage(settings),
        events_older_than=events,
        results_older_than=results,
    )


# Idempotent: the delivery's compare-and-set claim refuses a second copy, and an app
# deduplicates by the message id in any case. Not acks_late: a worker lost mid-POST leaves
# the delivery `sending`, and its lapsed lease makes it due again.
@shared_task(
    bind=True,
    name=names.DELIVER_OUTBOUND,
    ignore_result=True,
    acks_late=False,
    max_retries=DATABASE_RETRIES,
)
def deliver_outbound(self: Task, delivery_id: int) -> None:
    """POST one message to one app endpoint and record the attempt."""
    try:
        deliver(self.app.runtime, delivery_id)
    except SQLAlchemyError as exc:
        if not is_transient(exc):
            raise
        # Before the claim: the delivery is still enqueued, try again soon. After the POST:
        # the claim refuses the retry, and the lapsed lease makes the delivery due again.
        delay = backoff_seconds(
            self.request.retries + 1,
            base_seconds=DATABASE_RETRY_BASE_SECONDS,
            max_seconds=DATABASE_RETRY_MAX_SECONDS,
        )
        log.warning(
            "outbound delivery %s: database unavailable (%s); retry in %.1f s",
            delivery_id,
            type(exc).__name__,
            delay,
        )
        raise self.retry(exc=exc, countdown=delay) from exc
