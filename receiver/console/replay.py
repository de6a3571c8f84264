"""Replay from the console through the very plan and apply `rivya-hooks replay` uses.

Only dead and quarantined events are replayed here; anything else is still on its way. Each
replay asked for is recorded as an operator action in the same transaction as the event's
move, so the record and the move exist together or not at all.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models.events import EventStatus, WebhookEvent
from models.operator_actions import record_action
from models.replay import ReplayStep, apply_replay, plan_replay
from receiver.console.access import Operator

REPLAYABLE = (EventStatus.DEAD, EventStatus.QUARANTINED)
# A batch replays at most this many events; the preview says when a filter selects more.
MAX_BATCH = 200


def plan(session: Session, event_ids: Iterable[str]) -> list[ReplayStep]:
    """Return what replaying each still-replayable event would do, oldest first."""
    events = session.scalars(
        select(WebhookEvent)
        .where(WebhookEvent.event_id.in_(list(event_ids)[:MAX_BATCH]))
        .where(WebhookEvent.status.in_(REPLAYABLE))
        .order_by(WebhookEvent.received_at, WebhookEvent.id)
    )
    return [plan_replay(event) for event in events]


def replay(
    sessions: sessionmaker[Session], event_ids: Iterable[str], operator: Operator
) -> list[ReplayStep]:
    """Replay the events that are still dead or quarantined; record the action on each."""
    with sessions() as session:
        planned = plan(session, event_ids)
    return apply_replay(
        sessions,
        planned,
        record=partial(_record, operator),
        reason=f"replayed from the console by {operator.role}",
    )


def _record(operator: Operator, session: Session, step: ReplayStep) -> None:
    record_action(
        session,
        action="replay",
        role=operator.role,
        token_fingerprint=operator.token_fingerprint,
        event_id=step.event_id,
        detail=f"{step.before.value} -> {step.after.value}: {step.action}",
    )
