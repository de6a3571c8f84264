"""Find events that fell between the cracks and hand them to the broker again."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from models.base import utcnow
from models.events import EventStatus, WebhookEvent
from models.inbox import mark_enqueued
from rivyahooks.settings import Settings

log = logging.getLogger(__name__)
BATCH = 500


@dataclass(frozen=True)
class SweepResult:
    found: int
    enqueued: int


def send_until_refused(
    enqueue: Callable[[str], None], event_ids: list[str]
) -> tuple[list[str], Exception | None]:
    """Publish committed events in order; stop at the first broker error.

    Return the ids sent and the error that stopped the loop, if any. The rest stay as they
    are in the database, where the next sweep finds them.
    """
    sent: list[str] = []
    for event_id in event_ids:
        try:
            enqueue(event_id)
        except Exception as exc:  # kombu raises many types for a dead broker
            return sent, exc
        sent.append(event_id)
    return sent, None


def stale_event_ids(session: Session, settings: Settings, now: dt.datetime) -> list[str]:
    """Return events that should be on the broker but may not be.

    - `received` past a short age: committed, but the publish failed (broker down).
    - `enqueued`, `processing` or `failed` past the visibility window: the message was lost
      (a broker restart without persistence) or its worker died and nothing redelivered it.
    """
    received_before = now - dt.timedelta(seconds=settings.sweep_received_after_seconds)
    stuck_before = now - dt.timedelta(seconds=settings.task_visibility_timeout_seconds)
    query = (
        select(WebhookEvent.event_id)
        .where(
            or_(
                (WebhookEvent.status == EventStatus.RECEIVED)
                & (WebhookEvent.updated_at <= received_before),
                WebhookEvent.status.in_(
                    [EventStatus.ENQUEUED, EventStatus.PROCESSING, EventStatus.FAILED]
                )
                & (WebhookEvent.updated_at <= stuck_before),
            )
        )
        .order_by(WebhookEvent.updated_at)
        .limit(BATCH)
    )
    return list(session.scalars(query))


def sweep(
    sessions: sessionmaker[Session], settings: Settings, enqueue: Callable[[str], None]
) -> SweepResult:
    """Re-enqueue stale events; return how many were found and how many were enqueued."""
    now = utcnow()
    with sessions() as session:
        event_ids = stale_event_ids(session, settings, now)
    enqueued, error = send_until_refused(enqueue, event_ids)
    if error is not None:
        log.warning("sweep: enqueue failed error=%s", type(error).__name__)
    with sessions.begin() as session:
        mark_enqueued(session, enqueued)
        _touch_requeued(session, enqueued, now)
    if event_ids:
        log.info("sweep found=%d enqueued=%d", len(event_ids), len(enqueued))
    return SweepResult(found=len(event_ids), enqueued=len(enqueued))


def _touch_requeued(session: Session, event_ids: list[str], now: dt.datetime) -> None:
    # Events rescued from processing/failed/enqueued go back to `enqueued` with a fresh
    # timestamp, so the next sweep does not send them again straight away.
    for event in session.scalars(
        select(WebhookEvent).where(
            WebhookEvent.event_id.in_(event_ids),
            WebhookEvent.status.in_(
                [EventStatus.ENQUEUED, EventStatus.PROCESSING, EventStatus.FAILED]
            ),
        )
    ):
        event.transition(EventStatus.ENQUEUED, reason="re-enqueued by the sweeper")
        event.enqueued_at = now
