"""An app's delivery attempts as its page shows them: newest first, a keyset page at a time.

Each page is one range of the (app_id, attempted_at) index, like the event lists; each
attempt comes with its message's id, type and task, never the message's (sealed) payload.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import Session

from models.event_pages import Cursor
from models.outbound import DeliveryStatus, OutboundAttempt, OutboundDelivery, OutboundMessage


@dataclass(frozen=True)
class AttemptRow:
    attempt: OutboundAttempt
    message_id: str
    message_type: str
    task_id: str


@dataclass(frozen=True)
class AttemptPage:
    rows: list[AttemptRow]
    next_cursor: Cursor | None


def attempt_page(session: Session, app_id: str, after: Cursor | None, limit: int) -> AttemptPage:
    """Return up to `limit` of the app's attempts older than `after`, newest first."""
    query = (
        select(OutboundAttempt, OutboundMessage.id, OutboundMessage.type, OutboundMessage.task_id)
        .join(OutboundDelivery, OutboundDelivery.id == OutboundAttempt.delivery_id)
        .join(OutboundMessage, OutboundMessage.id == OutboundDelivery.message_id)
        .where(OutboundAttempt.app_id == app_id)
    )
    if after is not None:
        # The cursor's time is the last shown attempt's attempted_at.
        query = query.where(
            tuple_(OutboundAttempt.attempted_at, OutboundAttempt.id) < (after.received_at, after.id)
        )
    query = query.order_by(OutboundAttempt.attempted_at.desc(), OutboundAttempt.id.desc())
    # One row more than shown says whether there is a next page without a count.
    found = session.execute(query.limit(limit + 1)).all()
    rows = [AttemptRow(*row) for row in found[:limit]]
    last = rows[-1].attempt if rows else None
    next_cursor = (
        Cursor(last.attempted_at, last.id) if len(found) > limit and last is not None else None
    )
    return AttemptPage(rows, next_cursor)


def deliveries_by_status(session: Session, app_id: str) -> dict[DeliveryStatus, int]:
    """Return how many of the app's deliveries are in each status (from the app/status index)."""
    rows = session.execute(
        select(OutboundDelivery.status, func.count())
        .where(OutboundDelivery.app_id == app_id)
        .group_by(OutboundDelivery.status)
    ).all()
    return {DeliveryStatus(status): int(count) for status, count in rows}
