"""The stored events: their list, newest first, and one event's page with its timeline."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import abort, render_template
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from models.event_pages import event_page
from models.events import UNFINISHED_STATUSES, EventSource, EventStatus, WebhookEvent
from models.generations import Generation
from receiver.console import replay
from receiver.console.blueprint import bp
from receiver.console.list_query import PAGE_SIZE, event_filter, filter_args, page_cursor
from receiver.console.redact import shown_body, shown_headers
from receiver.console.timeline import timeline
from receiver.state import state


def events_context(allowed: tuple[EventStatus, ...] = tuple(EventStatus)) -> dict[str, Any]:
    """Return one page of the query's events, and its links, for an event list's template."""
    selected = event_filter(allowed)
    after = page_cursor()
    with state().sessions() as session:
        page = event_page(session, selected, after, PAGE_SIZE)
    args = filter_args()
    return {
        "events": page.events,
        "next_url": (
            "?" + urlencode({**args, "after": page.next_cursor.encode()})
            if page.next_cursor
            else None
        ),
        "first_page": after is None,
        "args": args,
        "query": urlencode(args),
        "statuses": allowed,
        "sources": list(EventSource),
    }


@bp.get("/events")
def events() -> ResponseReturnValue:
    """Stored events, newest first, filtered and paged."""
    return render_template("console/events.html", **events_context())


@bp.get("/events/rows")
def event_rows() -> ResponseReturnValue:
    """The first page's rows again, for the list to show new events as they arrive."""
    return render_template("console/_event_rows.html", **events_context())


@bp.get("/events/<event_id>")
def event_detail(event_id: str) -> ResponseReturnValue:
    """One event: its timeline, stored headers and body."""
    with state().sessions() as session:
        event = session.scalars(
            select(WebhookEvent).where(WebhookEvent.event_id == event_id)
        ).one_or_none()
        if event is None:
            abort(404, "no such event")
        steps = timeline(session, event)
        generation = (
            session.scalars(select(Generation).where(Generation.task_id == event.task_id)).first()
            if event.task_id
            else None
        )
        body, body_cut = shown_body(event.body)
        return render_template(
            "console/event.html",
            event=event,
            steps=steps,
            generation=generation,
            headers=shown_headers(event.headers or {}),
            body=body,
            body_cut=body_cut,
            body_bytes=len(event.body),
            replayable=event.status in replay.REPLAYABLE,
            unfinished=event.status in UNFINISHED_STATUSES,
        )
