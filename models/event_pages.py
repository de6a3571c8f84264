"""Pages of stored events, newest first, for the console: keyset pagination on an index.

An offset would make page 1,000 read the 50,000 rows before it; a cursor of
(received_at, id) makes every page one index range scan of one page's rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Index, Select, select, tuple_
from sqlalchemy.orm import Session, defer

from models.events import EventSource, EventStatus, WebhookEvent

# Declared here rather than on the model: they exist for these pages. Status is the only
# filter needing its own index: dead or quarantined events can be rare among millions, while
# a type or a source is common enough that walking the time index finds a page quickly, and
# task ids have their own index.
Index("ix_webhook_events_received_at_id", WebhookEvent.received_at, WebhookEvent.id)
Index(
    "ix_webhook_events_status_received_at_id",
    WebhookEvent.status,
    WebhookEvent.received_at,
    WebhookEvent.id,
)


@dataclass(frozen=True)
class Cursor:
    """Where a page ends: the last row's (received_at, id)."""

    received_at: dt.datetime
    id: int

    def encode(self) -> str:
        return f"{self.received_at.isoformat()}~{self.id}"

    @classmethod
    def decode(cls, text: str) -> Cursor | None:
        """Return the cursor, or None when the text is not one (a hand-edited URL)."""
        moment, _, number = text.partition("~")
        try:
            received_at = dt.datetime.fromisoformat(moment)
            row_id = int(number)
        except ValueError:
            return None
        if received_at.tzinfo is None:
            return None
        return cls(received_at, row_id)


R = TypeVar("R", bound=Any)


@dataclass(frozen=True)
class EventFilter:
    statuses: tuple[EventStatus, ...] = ()
    event_type: str | None = None
    source: EventSource | None = None
    task_id: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None

    def apply(self, query: Select[R]) -> Select[R]:
        """Return the query narrowed to the events this filter selects."""
        if len(self.statuses) == 1:
            query = query.where(WebhookEvent.status == self.statuses[0])
        elif self.statuses:
            query = query.where(WebhookEvent.status.in_(self.statuses))
        if self.event_type:
            query = query.where(WebhookEvent.event_type == self.event_type)
        if self.source:
            query = query.where(WebhookEvent.source == self.source)
        if self.task_id:
            query = query.where(WebhookEvent.task_id == self.task_id)
        if self.since:
            query = query.where(WebhookEvent.received_at >= self.since)
        if self.until:
            query = query.where(WebhookEvent.received_at < self.until)
        return query


@dataclass(frozen=True)
class EventPage:
    events: Sequence[WebhookEvent]
    next_cursor: Cursor | None


def event_page(
    session: Session, selected: EventFilter, after: Cursor | None, limit: int
) -> EventPage:
    """Return up to `limit` events older than `after`, newest first, without their bodies."""
    query = selected.apply(
        select(WebhookEvent).options(defer(WebhookEvent.body), defer(WebhookEvent.headers))
    )
    if after is not None:
        query = query.where(
            tuple_(WebhookEvent.received_at, WebhookEvent.id) < (after.received_at, after.id)
        )
    query = query.order_by(WebhookEvent.received_at.desc(), WebhookEvent.id.desc())
    # One row more than shown says whether there is a next page without a count.
    rows = list(session.scalars(query.limit(limit + 1)))
    events = rows[:limit]
    next_cursor = (
        Cursor(events[-1].received_at, events[-1].id) if len(rows) > limit and events else None
    )
    return EventPage(events, next_cursor)


def selected_event_ids(session: Session, selected: EventFilter, limit: int) -> list[str]:
    """Return the ids of the events a filter selects, oldest first, at most `limit`."""
    query = selected.apply(select(WebhookEvent)).order_by(WebhookEvent.received_at, WebhookEvent.id)
    return list(session.scalars(query.with_only_columns(WebhookEvent.event_id).limit(limit)))
