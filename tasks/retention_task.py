"""The scheduled purge (beat runs it every RETENTION_INTERVAL_SECONDS)."""

from __future__ import annotations

import datetime as dt

from celery import Task, shared_task

from storage import open_storage
from tasks import names
from tasks.retention import purge


def _days(days: int) -> dt.timedelta | None:
    return dt.timedelta(days=days) if days else None


# Not acks_late: a purge lost with its worker is simply run again by the next beat tick, and
# every step of it can be repeated (tombstones are inserted with ON CONFLICT DO NOTHING).
@shared_task(bind=True, name=names.PURGE, ignore_result=True)
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
