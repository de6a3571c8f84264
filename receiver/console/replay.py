"""Replay from the console through the very functions `rivya-hooks replay` uses.

The console never has a replay of its own: it plans with the CLI's plan (what would happen
to each event) and applies with the CLI's apply, then records who asked. Only dead and
quarantined events are replayed here; anything else is still on its way.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models.events import EventStatus, WebhookEvent
from models.operator_actions import record_action
from receiver.console.access import Operator

# The CLI's replay functions; the receiver imports nothing else of the CLI.
from rivyahooks.commands.events import _apply_replay, _replay_plan

REPLAYABLE = (EventStatus.DEAD, EventStatus.QUARANTINED)
# A batch replays at most this many events; the preview says when a filter selects more.
MAX_BATCH = 200


def plan(session: Session, event_ids: Iterable[str]) -> list[dict[str, Any]]:
    """Return what replaying each still-replayable event would do, oldest first."""
    events = session.scalars(
        select(WebhookEvent)
        .where(WebhookEvent.event_id.in_(list(event_ids)[:MAX_BATCH]))
        .where(WebhookEvent.status.in_(REPLAYABLE))
        .order_by(WebhookEvent.received_at, WebhookEvent.id)
    )
    return [_replay_plan(event) for event in events]


def replay(
    sessions: sessionmaker[Session],
    event_ids: Iterable[str],
    operator: Operator,
) -> list[dict[str, Any]]:
    """Replay the events that are still dead or quarantined; record the action on each."""
    with sessions() as session:
        planned = plan(session, event_ids)
    _apply_replay(sessions, planned)
    with sessions.begin() as session:
        for item in planned:
            record_action(
                session,
                action="replay",
                role=operator.role,
                token_fingerprint=operator.token_fingerprint,
                event_id=item["event_id"],
                detail=f"{item['from']} -> {item['to']}: {item['action']}",
            )
    return planned
