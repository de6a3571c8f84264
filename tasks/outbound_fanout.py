"""Turn the change feed into messages for apps: one per change of a generation's final state.

The relay calls `fan_out` in its loop. It reads the feed after its cursor, in the feed's
order (positions are handed out in commit order, so nothing behind the cursor can still
appear, see models/feed.py), and in the same transaction writes the messages, one pending
delivery per subscribed app, and the new cursor. The cursor row is locked (SKIP LOCKED on
PostgreSQL), so with several relays one fans out and the others skip: each position is
turned into messages once.

A generation's final state is `result.ready` once it succeeded and every output is stored,
`result.failed` once Rivya failed it or an event of it went dead (we gave up); a message is
made when that state differs from the last one announced for the generation, so a
generation replayed from dead to stored gets a `result.ready` after its `result.failed`.
Apps added later get messages from then on, not the history (replay sends the history).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from models.apps import App, EventType, enabled_apps
from models.clock import database_now
from models.db import dialect_insert
from models.events import EventStatus, WebhookEvent
from models.generations import Generation, GenerationStatus
from models.outbound import (
    CURSOR_ID,
    OutboundCursor,
    OutboundMessage,
    new_delivery,
    new_message_id,
)
from models.result_documents import result_document
from storage import download_name

log = logging.getLogger(__name__)

BATCH = 200
FAILED_AT_RIVYA = "failed_at_rivya"
GAVE_UP = "gave_up"


def fan_out(session: Session, base_url: str = "", limit: int = BATCH) -> int:
    """Make the messages of the feed's next changes; return how many were made.

    Call inside a transaction; everything it writes commits with the caller.
    """
    cursor = _lock_cursor(session)
    if cursor is None:
        return 0  # another relay is fanning out
    generations = list(
        session.scalars(
            select(Generation)
            .where(Generation.feed_position > cursor.position)
            .order_by(Generation.feed_position)
            .limit(limit)
            .options(selectinload(Generation.outputs))
        )
    )
    if not generations:
        return 0
    cursor.position = max(g.feed_position or 0 for g in generations)
    apps = enabled_apps(session)
    if not apps:
        return 0  # nobody listens: the cursor moves on, nothing is kept for later
    now = database_now(session)
    announced = _last_announced(session, [g.task_id for g in generations])
    gave_up = _gave_up(session, [g.task_id for g in generations])
    made = 0
    for generation in generations:
        state, reason = final_state(generation, generation.task_id in gave_up)
        if state is None or announced.get(generation.task_id) == state:
            continue
        subscribers = [app for app in apps if app.wants(state)]
        _make_message(session, generation, state, reason, subscribers, base_url, now)
        made += 1
    return made


def final_state(generation: Generation, gave_up: bool) -> tuple[str | None, str | None]:
    """Return (message type, reason) of the generation's final state, or (None, None)."""
    if generation.status is GenerationStatus.SUCCEEDED and generation.results_stored_at:
        return EventType.RESULT_READY.value, None
    if generation.status is GenerationStatus.FAILED:
        return EventType.RESULT_FAILED.value, FAILED_AT_RIVYA
    if gave_up:
        return EventType.RESULT_FAILED.value, GAVE_UP
    return None, None


def message_body(
    message_id: str,
    event_type: str,
    created_at: dt.datetime,
    generation: Generation,
    reason: str | None,
    base_url: str,
) -> bytes:
    """Return the bytes of a message: its id, type, time and the generation's result record."""
    document = result_document(generation, download_name, base_url=base_url)
    body = {
        "id": message_id,
        "type": event_type,
        "created_at": created_at.isoformat().replace("+00:00", "Z"),
        "data": document.model_dump(mode="json"),
    }
    if reason is not None:
        body["reason"] = reason
    return json.dumps(body, separators=(",", ":")).encode()


def _lock_cursor(session: Session) -> OutboundCursor | None:
    session.execute(
        dialect_insert(session, OutboundCursor)
        .values(id=CURSOR_ID, position=0)
        .on_conflict_do_nothing(index_elements=["id"])
    )
    return session.scalars(
        select(OutboundCursor)
        .where(OutboundCursor.id == CURSOR_ID)
        .with_for_update(skip_locked=True)
    ).one_or_none()


def _last_announced(session: Session, task_ids: Sequence[str]) -> dict[str, str]:
    rows = session.execute(
        select(OutboundMessage.task_id, OutboundMessage.type)
        .where(OutboundMessage.task_id.in_(task_ids))
        .order_by(OutboundMessage.feed_position)
    ).all()
    return {task_id: event_type for task_id, event_type in rows}


def _gave_up(session: Session, task_ids: Sequence[str]) -> set[str]:
    return set(
        session.scalars(
            select(WebhookEvent.task_id).where(
                WebhookEvent.task_id.in_(task_ids), WebhookEvent.status == EventStatus.DEAD
            )
        )
    )


def _make_message(
    session: Session,
    generation: Generation,
    event_type: str,
    reason: str | None,
    apps: Sequence[App],
    base_url: str,
    now: dt.datetime,
) -> None:
    message_id = new_message_id()
    session.add(
        OutboundMessage(
            id=message_id,
            type=event_type,
            task_id=generation.task_id,
            feed_position=generation.feed_position,
            payload=message_body(message_id, event_type, now, generation, reason, base_url),
            created_at=now,
        )
    )
    session.flush()
    for app in apps:
        session.add(new_delivery(message_id, app.id, now))
    log.debug("outbound: %s %s for %d app(s)", event_type, generation.task_id, len(apps))
