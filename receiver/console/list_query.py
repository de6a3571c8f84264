"""What an event list shows, read from its query string: the filter and the page cursor.

The events and dead pages share these; a value that cannot be read is a 400 naming it,
never silently ignored.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from flask import abort, request

from models.event_pages import Cursor, EventFilter
from models.events import EventSource, EventStatus

# Rows per page of every console list; each page is one query on an index.
PAGE_SIZE = 50
FILTER_KEYS = ("status", "type", "source", "task", "since", "until")


def time_arg(name: str, values: Mapping[str, str] | None = None) -> dt.datetime | None:
    """Return the time `name` of the query, or of `values` (a form), UTC unless it says
    otherwise; None if absent."""
    value = (request.args if values is None else values).get(name, "").strip()
    if not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        abort(400, f"{name}: {value!r} is not a time (use 2026-11-28T09:30, UTC)")
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def event_filter(allowed: tuple[EventStatus, ...] = tuple(EventStatus)) -> EventFilter:
    """Return the query's event filter, its statuses limited to `allowed`."""
    statuses: tuple[EventStatus, ...] = ()
    if status := request.args.get("status", "").strip():
        try:
            statuses = (EventStatus(status),)
        except ValueError:
            abort(400, f"status: {status!r} is not an event status")
        if statuses[0] not in allowed:
            abort(400, f"status: {status!r} is not shown on this page")
    elif len(allowed) < len(EventStatus):
        statuses = allowed
    source = None
    if value := request.args.get("source", "").strip():
        try:
            source = EventSource(value)
        except ValueError:
            abort(400, f"source: {value!r} is not an event source")
    return EventFilter(
        statuses=statuses,
        event_type=request.args.get("type", "").strip() or None,
        source=source,
        task_id=request.args.get("task", "").strip() or None,
        since=time_arg("since"),
        until=time_arg("until"),
    )


def page_cursor() -> Cursor | None:
    """Return the cursor of the page asked for (`after`), or None for the first page."""
    text = request.args.get("after", "").strip()
    if not text:
        return None
    cursor = Cursor.decode(text)
    if cursor is None:
        abort(400, "after: not a page cursor")
    return cursor


def filter_args() -> dict[str, str]:
    """Return the filter's non-empty query arguments, for the links to other pages."""
    return {key: request.args[key] for key in FILTER_KEYS if request.args.get(key, "").strip()}
