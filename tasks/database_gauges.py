"""The database gauges: what only the database knows, computed in one place (beat).

At most once per METRICS_DATABASE_INTERVAL_SECONDS, on the scrape that finds the last
values too old; other scrapes get the stored values. Every query reads an index: statuses
that stay small (unfinished, dead, quarantined) are counted, never the whole table; finished
events are counted by the worker's rivyahooks_events_finished_total instead.

Outbound webhooks' gauges are per app, by name: every registered app has a sample, so one
removed is gone from the next computation rather than kept at its last value.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from models.apps import App
from models.base import utcnow
from models.clock import database_now
from models.events import UNFINISHED_STATUSES, EventStatus, WebhookEvent
from models.inbox import count_watched
from models.outbound import backlog_by_app, oldest_due_by_app
from models.reconcile import ReconcileState
from rivyahooks_foundation.metrics.families import PREFIX
from tasks.reconcile import STATE_NAME

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutboundSnapshot:
    backlog: dict[str, int]  # by app name: deliveries not yet delivered nor given up
    overdue_seconds: dict[str, float]  # by app name: how long its oldest due one has waited
    apps_disabled: int


@dataclass(frozen=True)
class Snapshot:
    taken_at: float  # unix time
    events: dict[EventStatus, int]
    oldest_unfinished_age_seconds: float
    reconcile_last_run: float | None
    reconcile_checkpoint: float | None
    outbound: OutboundSnapshot


def take_outbound_snapshot(session: Session) -> OutboundSnapshot:
    now = database_now(session)  # due times are the database's
    # Columns only: an app's row holds sealed secrets, not to be opened for a gauge.
    apps = session.execute(select(App.id, App.name, App.enabled)).all()
    backlog = backlog_by_app(session)
    oldest_due = oldest_due_by_app(session, now)
    return OutboundSnapshot(
        backlog={app.name: backlog.get(app.id, 0) for app in apps},
        # A disabled app's held deliveries wait for an operator, not for the relay.
        overdue_seconds={
            app.name: (now - oldest_due[app.id]).total_seconds()
            if app.enabled and app.id in oldest_due
            else 0.0
            for app in apps
        },
        apps_disabled=sum(1 for app in apps if not app.enabled),
    )


def take_snapshot(session: Session) -> Snapshot:
    """Run the gauges' queries once."""
    counts = count_watched(session)
    now = utcnow()
    oldest = session.scalar(
        select(func.min(WebhookEvent.received_at)).where(
            WebhookEvent.status.in_(UNFINISHED_STATUSES)
        )
    )
    state = session.get(ReconcileState, STATE_NAME)
    return Snapshot(
        taken_at=now.timestamp(),
        events=counts,
        oldest_unfinished_age_seconds=0.0 if oldest is None else (now - oldest).total_seconds(),
        reconcile_last_run=_unix(state.last_run_at) if state else None,
        reconcile_checkpoint=_unix(state.checkpoint) if state else None,
        outbound=take_outbound_snapshot(session),
    )


def _unix(moment: object) -> float | None:
    return None if moment is None else moment.timestamp()  # type: ignore[attr-defined]


class DatabaseGauges(Collector):
    """A collector that reruns the queries only when its values are older than `interval`."""

    def __init__(self, sessions: sessionmaker[Session], interval_seconds: float) -> None:
        self._sessions = sessions
        self._interval = interval_seconds
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._taken_monotonic = 0.0

    def snapshot(self) -> Snapshot | None:
        """Return fresh enough values, querying when they are too old; None if never read."""
        with self._lock:
            due = time.monotonic() - self._taken_monotonic >= self._interval
            if self._snapshot is None or due:
                try:
                    with self._sessions() as session:
                        self._snapshot = take_snapshot(session)
                except SQLAlchemyError as exc:
                    # Old values stay; their timestamp gauge shows how old they are.
                    log.warning("database gauges not refreshed error=%s", type(exc).__name__)
                self._taken_monotonic = time.monotonic()
            return self._snapshot

    def collect(self) -> Iterator[GaugeMetricFamily]:
        snap = self.snapshot()
        if snap is None:
            return
        events = GaugeMetricFamily(
            f"{PREFIX}_events",
            "Stored events in a status that should stay small: unfinished, dead, quarantined.",
            labels=["status"],
        )
        for status, count in snap.events.items():
            events.add_metric([status.value], count)
        yield events
        yield GaugeMetricFamily(
            f"{PREFIX}_oldest_unfinished_event_age_seconds",
            "Age of the oldest event not yet processed (0 when none waits).",
            value=snap.oldest_unfinished_age_seconds,
        )
        for name, value, text in (
            ("reconcile_last_run", snap.reconcile_last_run, "the reconciler last finished"),
            ("reconcile_checkpoint", snap.reconcile_checkpoint, "of the reconciler's checkpoint"),
        ):
            if value is not None:
                yield GaugeMetricFamily(
                    f"{PREFIX}_{name}_timestamp_seconds", f"Unix time {text}.", value=value
                )
        yield from _outbound_families(snap.outbound)
        yield GaugeMetricFamily(
            f"{PREFIX}_database_gauges_timestamp_seconds",
            "Unix time the database gauges were computed.",
            value=snap.taken_at,
        )


def _outbound_families(snap: OutboundSnapshot) -> Iterator[GaugeMetricFamily]:
    backlog = GaugeMetricFamily(
        f"{PREFIX}_outbound_backlog",
        "Messages not yet delivered nor given up, by app.",
        labels=["app"],
    )
    for name, count in snap.backlog.items():
        backlog.add_metric([name], count)
    yield backlog
    overdue = GaugeMetricFamily(
        f"{PREFIX}_outbound_oldest_overdue_seconds",
        "How long an enabled app's oldest due message has waited to be sent (0 when none).",
        labels=["app"],
    )
    for name, seconds in snap.overdue_seconds.items():
        overdue.add_metric([name], seconds)
    yield overdue
    yield GaugeMetricFamily(
        f"{PREFIX}_outbound_apps_disabled_now",
        "Apps disabled right now (by an operator or by their failures).",
        value=snap.apps_disabled,
    )
