"""Put events in the inbox and read them back, as the tests of the lifecycle need."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models.events import EventAttempt, EventSource, WebhookEvent
from models.inbox import insert_event
from rivyahooks_protocol import contract


def add_event(sessions: sessionmaker[Session], event_id: str, **values: Any) -> str:
    """Store an event as a webhook would (`received`, due now unless `values` say else)."""
    values.setdefault("body", b"{}")
    values.setdefault("source", EventSource.WEBHOOK)
    if values.get("task_id"):
        values.setdefault("event_type", contract.EVENT_GENERATION_SUCCEEDED)
    with sessions.begin() as session:
        insert_event(session, event_id=event_id, **values)
    return event_id


def read_event(sessions: sessionmaker[Session], event_id: str) -> WebhookEvent:
    with sessions() as session:
        return session.scalars(select(WebhookEvent).where(WebhookEvent.event_id == event_id)).one()


def attempt_history(sessions: sessionmaker[Session], event_id: str) -> list[tuple[int, Any]]:
    """Return (number, outcome) of the event's attempts, in order."""
    with sessions() as session:
        return [
            (a.number, a.outcome)
            for a in session.scalars(
                select(EventAttempt)
                .where(EventAttempt.event_id == event_id)
                .order_by(EventAttempt.number)
            )
        ]
