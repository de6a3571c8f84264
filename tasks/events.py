"""Celery tasks for events: thin wrappers that own a session per run and call plain functions.

Delivery contract of every task here: called with ids only; idempotent, hence `acks_late`
with requeue on a lost worker; results ignored; transient failures retried with backoff by
the processing step itself (it knows Retry-After), permanent ones end the event `dead`.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task, shared_task

from storage import remove_abandoned_uploads
from tasks import names
from tasks.processing import RetryLater, process_event
from tasks.sweep import sweep

log = logging.getLogger(__name__)


def send_process_event(app: Any, event_id: str) -> None:
    """Publish `events.process` for one committed event; raise if the broker is down."""
    app.send_task(names.PROCESS_EVENT, args=[event_id], retry=False)


@shared_task(
    bind=True,
    name=names.PROCESS_EVENT,
    ignore_result=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,  # the event row counts attempts and ends `dead` past the bound
)
def process(self: Task, event_id: str) -> None:
    """Fetch the event's generation from Rivya and store its results."""
    runtime = self.app.runtime
    try:
        process_event(
            runtime.sessions,
            runtime.settings,
            event_id,
            client=runtime.rivya,
            http=runtime.downloads,
        )
    except RetryLater as exc:
        raise self.retry(countdown=exc.delay_seconds, exc=exc) from exc


@shared_task(bind=True, name=names.SWEEP_EVENTS, ignore_result=True, acks_late=True)
def sweep_events(self: Task) -> None:
    """Re-enqueue events the broker lost or never got (idempotent: processing dedupes)."""
    runtime = self.app.runtime
    sweep(
        runtime.sessions, runtime.settings, lambda event_id: send_process_event(self.app, event_id)
    )
    remove_abandoned_uploads(runtime.settings)
