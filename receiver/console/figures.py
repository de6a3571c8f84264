"""The overview's figures, each from an indexed query (no scan of every stored event)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.apps import App
from models.delivery_counts import DeliveryCount, DeliveryOutcome, minute_of
from models.events import UNFINISHED_STATUSES, EventSource, EventStatus, WebhookEvent
from models.inbox import count_watched, oldest_unfinished_event
from models.outbound import backlog_by_app
from models.reconcile import ReconcileState

RECENT = dt.timedelta(hours=24)
RATE_WINDOW_MINUTES = 15
CHART_BUCKET_MINUTES = 5
OUTCOMES = (
    DeliveryOutcome.ACCEPTED,
    DeliveryOutcome.QUARANTINED,
    DeliveryOutcome.DUPLICATE,
    DeliveryOutcome.REJECTED,
    DeliveryOutcome.UNAVAILABLE,
)


@dataclass(frozen=True)
class Rate:
    outcome: str
    reason: str
    per_minute: float  # over the last RATE_WINDOW_MINUTES
    last_day: int


@dataclass(frozen=True)
class SecretUse:
    fingerprint: str | None
    position: int | None  # 1-based position in RIVYA_WEBHOOK_SECRETS; None: no longer set
    deliveries: int
    last_seen: dt.datetime


@dataclass
class Overview:
    now: dt.datetime
    by_status: dict[EventStatus, int]
    oldest: WebhookEvent | None
    recent_by_source: dict[EventSource, int]
    reconcile_runs: list[ReconcileState]
    secrets: list[SecretUse]
    rates: list[Rate] = field(default_factory=list)
    apps: int = 0
    apps_disabled: int = 0
    # Outbound messages not yet delivered nor given up, over every app.
    outbound_backlog: int = 0

    @property
    def backlog(self) -> int:
        return sum(self.by_status.get(s, 0) for s in UNFINISHED_STATUSES)

    @property
    def oldest_age_seconds(self) -> float | None:
        if self.oldest is None:
            return None
        return (self.now - self.oldest.received_at).total_seconds()

    @property
    def recent_events(self) -> int:
        return sum(self.recent_by_source.values())

    @property
    def found_only_by_reconcile(self) -> int:
        return self.recent_by_source.get(EventSource.RECONCILE, 0)

    @property
    def reconcile_share(self) -> float:
        total = self.recent_events
        return self.found_only_by_reconcile / total if total else 0.0


def overview(session: Session, now: dt.datetime, configured: tuple[str, ...]) -> Overview:
    """Return the overview's figures; `configured` are the secrets' fingerprints in order."""
    by_status = count_watched(session)
    since = now - RECENT
    recent_by_source = dict(
        session.execute(
            select(WebhookEvent.source, func.count())
            .where(WebhookEvent.received_at >= since)
            .group_by(WebhookEvent.source)
        ).all()
    )
    secrets = [
        SecretUse(
            fingerprint=fp,
            position=configured.index(fp) + 1 if fp in configured else None,
            deliveries=count,
            last_seen=last,
        )
        for fp, count, last in session.execute(
            select(
                WebhookEvent.secret_fingerprint, func.count(), func.max(WebhookEvent.received_at)
            )
            .where(WebhookEvent.received_at >= since, WebhookEvent.source == EventSource.WEBHOOK)
            .group_by(WebhookEvent.secret_fingerprint)
            .order_by(func.max(WebhookEvent.received_at).desc())
        ).all()
    ]
    return Overview(
        now=now,
        by_status=by_status,
        oldest=oldest_unfinished_event(session),
        recent_by_source=recent_by_source,
        reconcile_runs=list(session.scalars(select(ReconcileState).order_by(ReconcileState.name))),
        secrets=secrets,
        rates=rates(session, now),
        **apps_figures(session),
    )


def apps_figures(session: Session) -> dict[str, int]:
    """Return how many apps there are, how many are disabled, and their backlog in all."""
    total, disabled = session.execute(
        select(func.count(), func.count().filter(App.enabled.is_(False))).select_from(App)
    ).one()
    return {
        "apps": int(total),
        "apps_disabled": int(disabled),
        "outbound_backlog": sum(backlog_by_app(session).values()),
    }


def rates(session: Session, now: dt.datetime) -> list[Rate]:
    """Return deliveries per minute by outcome and reason, recent and over the last day."""
    # The current minute and the 14 before it.
    window_start = minute_of(now) - dt.timedelta(minutes=RATE_WINDOW_MINUTES - 1)
    recent = func.sum(DeliveryCount.count).filter(DeliveryCount.minute >= window_start)
    rows = session.execute(
        select(
            DeliveryCount.outcome,
            DeliveryCount.reason,
            func.coalesce(recent, 0),
            func.sum(DeliveryCount.count),
        )
        .where(DeliveryCount.minute >= now - RECENT)
        .group_by(DeliveryCount.outcome, DeliveryCount.reason)
    ).all()
    order = {outcome: position for position, outcome in enumerate(OUTCOMES)}
    found = [
        Rate(outcome, reason, int(in_window) / RATE_WINDOW_MINUTES, int(day))
        for outcome, reason, in_window, day in rows
    ]
    return sorted(found, key=lambda r: (order.get(r.outcome, len(order)), r.reason))


def rate_chart(session: Session, now: dt.datetime) -> dict[str, Any]:
    """Return the last day's deliveries per minute by outcome, in buckets, for the chart."""
    bucket = dt.timedelta(minutes=CHART_BUCKET_MINUTES)
    end = minute_of(now)
    end -= dt.timedelta(minutes=end.minute % CHART_BUCKET_MINUTES)
    start = end - RECENT + bucket
    sums: dict[str, dict[dt.datetime, int]] = defaultdict(lambda: defaultdict(int))
    for minute, outcome, count in session.execute(
        select(DeliveryCount.minute, DeliveryCount.outcome, func.sum(DeliveryCount.count))
        .where(DeliveryCount.minute >= start)
        .group_by(DeliveryCount.minute, DeliveryCount.outcome)
    ).all():
        offset = (minute - start) // bucket
        sums[outcome][start + offset * bucket] += int(count)
    times = [start + n * bucket for n in range(int(RECENT / bucket))]
    return {
        "bucket_minutes": CHART_BUCKET_MINUTES,
        "times": [int(t.timestamp()) for t in times],
        "series": {
            outcome: [sums[outcome].get(t, 0) / CHART_BUCKET_MINUTES for t in times]
            for outcome in OUTCOMES
        },
    }
