"""The scheduled reconcile (beat runs it every RECONCILE_INTERVAL_SECONDS)."""

from __future__ import annotations

import logging

from celery import Task, shared_task

from rivyahooks.rivya.client import RivyaClient
from tasks import names
from tasks.events import send_process_event
from tasks.reconcile import ReconcileBusy, reconcile

log = logging.getLogger(__name__)


# Not acks_late: a reconcile lost with its worker is simply run again by the next beat tick,
# and redelivering a long run on top of the next one would only contend for the lock.
@shared_task(bind=True, name=names.RECONCILE, ignore_result=True)
def run_reconcile(self: Task) -> None:
    """Read Rivya's event log since the checkpoint and poll unfinished generations."""
    runtime = self.app.runtime
    if not runtime.settings.rivya_api_key:
        log.warning("reconcile skipped: RIVYA_API_KEY is not set")
        return
    try:
        with RivyaClient.from_settings(runtime.settings) as client:
            reconcile(
                runtime.sessions,
                runtime.settings,
                client,
                lambda event_id: send_process_event(self.app, event_id),
            )
    except ReconcileBusy:
        log.info("reconcile skipped: another run holds the lock")
