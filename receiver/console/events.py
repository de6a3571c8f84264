"""The console's pages. Every query is paged on an index; every action is a CSRF-checked
POST by an admin, recorded with who and when."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from werkzeug.exceptions import HTTPException

from models.base import utcnow
from models.event_pages import Cursor, EventFilter, event_page, selected_event_ids
from models.events import UNFINISHED_STATUSES, EventSource, EventStatus, WebhookEvent
from models.generations import Generation, GenerationStatus, find_output
from receiver.console import figures, replay
from receiver.console.access import (
    CONSOLE_PATH,
    Operator,
    admin_only,
    current_operator,
    log_in,
    role_of,
)
from receiver.console.redact import redact_text, shown_body, shown_headers
from receiver.console.timeline import timeline
from receiver.responses import file_answer
from receiver.state import state
from storage import download_name, open_storage

log = logging.getLogger(__name__)
bp = Blueprint(
    "console",
    __name__,
    url_prefix=CONSOLE_PATH,
    template_folder="templates",
    static_folder="static",
)

PAGE_SIZE = 50
# Only these are shown inline as previews; anything else (SVG, HTML) is a download, since a
# stored file is whatever Rivya's URL returned.
PREVIEW_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
PUBLIC_ENDPOINTS = frozenset({"console.login", "console.static"})
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # same-origin, not no-referrer: Flask-WTF checks the Referer of HTTPS form posts.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class ConsoleState:
    tokens: dict[str, str]
    csrf: CSRFProtect


def console() -> ConsoleState:
    from flask import current_app

    value: ConsoleState = current_app.extensions["console"]
    return value


def operator() -> Operator:
    found: Operator = g.operator
    return found


@bp.before_request
def guard() -> ResponseReturnValue | None:
    """Let in only a logged-in operator (the login page and static files aside); check CSRF."""
    g.operator = current_operator(console().tokens)
    if request.endpoint not in PUBLIC_ENDPOINTS and g.operator is None:
        if request.method != "GET":
            abort(403)
        if request.headers.get("HX-Request"):
            # htmx swaps what it gets; tell it to load the login page instead.
            return Response(status=401, headers={"HX-Redirect": url_for("console.login")})
        return redirect(url_for("console.login", next=request.full_path.rstrip("?")))
    if request.method == "POST":
        console().csrf.protect()
    return None


@bp.after_request
def harden(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


@bp.errorhandler(HTTPException)
def error_page(error: HTTPException) -> ResponseReturnValue:
    code = error.code or 500
    return render_template("console/error.html", code=code, description=error.description), code


@bp.app_template_filter("redact")
def redact_filter(value: str | None) -> str:
    return redact_text(value)


@bp.app_template_filter("when")
def when_filter(value: dt.datetime | None) -> str:
    return "" if value is None else value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@bp.app_template_filter("age")
def age_filter(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} days"


@bp.app_context_processor
def console_globals() -> dict[str, Any]:
    return {"operator": g.get("operator")}


# --- login -------------------------------------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    """Take a token, open a session for its role."""
    target = _local_path(request.values.get("next"))
    if request.method == "GET":
        if g.operator is not None:
            return redirect(target)
        return render_template("console/login.html", next=target)
    role = role_of(request.form.get("token", ""), console().tokens)
    if role is None:
        log.warning("console login refused")
        return render_template("console/login.html", next=target, refused=True), 401
    who = log_in(role, console().tokens)
    log.info("console login role=%s token=%s", who.role, who.token_fingerprint)
    return redirect(target)


def _local_path(target: str | None) -> str:
    # Only a path of the console itself, so a crafted link cannot send an operator elsewhere.
    if target and target.startswith("/console/") and not target.startswith("/console//"):
        return target
    return url_for("console.overview")


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    from flask import session

    session.clear()
    return redirect(url_for("console.login"))


# --- overview ----------------------------------------------------------------------------


@bp.get("/")
def overview() -> ResponseReturnValue:
    """Deliveries, backlog, losses, dead events, reconcile and secrets at a glance."""
    shared = state()
    with shared.sessions() as session:
        figures_now = figures.overview(session, utcnow(), shared.secret_fingerprints)
    partial = request.headers.get("HX-Request")
    template = "console/_figures.html" if partial else "console/overview.html"
    return render_template(template, o=figures_now, statuses=EventStatus)


@bp.get("/rates.json")
def rates_json() -> Response:
    """The chart's data: deliveries per minute by outcome over the last day."""
    with state().sessions() as session:
        return jsonify(figures.rate_chart(session, utcnow()))


# --- events ------------------------------------------------------------------------------


def _time_arg(name: str) -> dt.datetime | None:
    value = request.args.get(name, "").strip()
    if not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        abort(400, f"{name}: {value!r} is not a time (use 2026-11-28T09:30, UTC)")
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _event_filter(allowed: tuple[EventStatus, ...] = tuple(EventStatus)) -> EventFilter:
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
        since=_time_arg("since"),
        until=_time_arg("until"),
    )


def _cursor() -> Cursor | None:
    text = request.args.get("after", "").strip()
    if not text:
        return None
    cursor = Cursor.decode(text)
    if cursor is None:
        abort(400, "after: not a page cursor")
    return cursor


def _filter_args() -> dict[str, str]:
    keys = ("status", "type", "source", "task", "since", "until")
    return {k: request.args[k] for k in keys if request.args.get(k, "").strip()}


def _events_context(allowed: tuple[EventStatus, ...] = tuple(EventStatus)) -> dict[str, Any]:
    selected = _event_filter(allowed)
    after = _cursor()
    with state().sessions() as session:
        page = event_page(session, selected, after, PAGE_SIZE)
    args = _filter_args()
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
    return render_template("console/events.html", **_events_context())


@bp.get("/events/rows")
def event_rows() -> ResponseReturnValue:
    """The first page's rows again, for the list to show new events as they arrive."""
    return render_template("console/_event_rows.html", **_events_context())


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


@bp.post("/events/<event_id>/replay")
@admin_only
def replay_one(event_id: str) -> ResponseReturnValue:
    """Replay one dead or quarantined event."""
    done = replay.replay(state().sessions, [event_id], operator())
    if not done:
        flash("Nothing replayed: the event is no longer dead or quarantined.", "warning")
    else:
        step = done[0]
        relay = " The relay hands it to the workers." if step.moves else ""
        flash(f"Replay: {step.before.value} → {step.after.value} ({step.action}).{relay}", "ok")
    return redirect(url_for("console.event_detail", event_id=event_id))


# --- dead and quarantined ----------------------------------------------------------------


@bp.get("/dead")
def dead() -> ResponseReturnValue:
    """Dead and quarantined events, filtered, with a replay of the selection."""
    return render_template("console/dead.html", **_events_context(replay.REPLAYABLE))


@bp.get("/dead/preview")
def dead_preview() -> ResponseReturnValue:
    """What a replay of the selection would do (a dry run: nothing changes)."""
    selected = _event_filter(replay.REPLAYABLE)
    with state().sessions() as session:
        ids = selected_event_ids(session, selected, replay.MAX_BATCH + 1)
        planned = replay.plan(session, ids)
    return render_template(
        "console/replay_preview.html",
        planned=planned,
        more=len(ids) > replay.MAX_BATCH,
        limit=replay.MAX_BATCH,
        args=_filter_args(),
        query=urlencode(_filter_args()),
    )


@bp.post("/dead/replay")
@admin_only
def dead_replay() -> ResponseReturnValue:
    """Replay exactly the events the preview listed (those still dead or quarantined)."""
    ids = request.form.getlist("event_id")
    if not ids:
        abort(400, "no events given")
    if len(ids) > replay.MAX_BATCH:
        abort(400, f"at most {replay.MAX_BATCH} events per replay")
    done = replay.replay(state().sessions, ids, operator())
    moved = sum(1 for step in done if step.moves)
    flash(
        f"Replayed {moved} of {len(ids)} previewed events; the relay hands them to the workers.",
        "ok",
    )
    return redirect(url_for("console.dead"))


# --- generations -------------------------------------------------------------------------


@bp.get("/generations")
def generations() -> ResponseReturnValue:
    """Generations, newest first, paged by id."""
    query = select(Generation).order_by(Generation.id.desc()).limit(PAGE_SIZE + 1)
    args: dict[str, str] = {}
    if status := request.args.get("status", "").strip():
        try:
            query = query.where(Generation.status == GenerationStatus(status))
        except ValueError:
            abort(400, f"status: {status!r} is not a generation status")
        args["status"] = status
    if task := request.args.get("task", "").strip():
        query = query.where(Generation.task_id == task)
        args["task"] = task
    before = request.args.get("before", type=int)
    if before:
        query = query.where(Generation.id < before)
    with state().sessions() as session:
        rows = list(session.scalars(query))
    shown = rows[:PAGE_SIZE]
    return render_template(
        "console/generations.html",
        generations=shown,
        args=args,
        statuses=list(GenerationStatus),
        next_url=(
            "?" + urlencode({**args, "before": shown[-1].id}) if len(rows) > PAGE_SIZE else None
        ),
    )


@bp.get("/generations/<task_id>")
def generation_detail(task_id: str) -> ResponseReturnValue:
    """One generation: status, credits, error, stored outputs with previews."""
    with state().sessions() as session:
        generation = session.scalars(
            select(Generation)
            .where(Generation.task_id == task_id)
            .options(selectinload(Generation.outputs))
        ).one_or_none()
        if generation is None:
            abort(404, "no such generation")
        page = event_page(session, EventFilter(task_id=task_id), None, 20)
        return render_template(
            "console/generation.html",
            generation=generation,
            outputs=generation.outputs,
            events=page.events,
            preview_types=PREVIEW_TYPES,
        )


@bp.get("/generations/<task_id>/outputs/<int:index>")
def output_file(task_id: str, index: int) -> ResponseReturnValue:
    """Serve a stored output to the console's session: inline for images, else a download.

    Read through the same storage code as the results API, but always streamed by this
    process: a redirect to object storage would put a signed URL in the operator's browser
    and leave the console's own origin (its CSP allows images from itself only).
    """
    with state().sessions() as session:
        output = find_output(session, task_id, index)
    if output is None:
        abort(404, "no such output")
    try:
        handle = open_storage(state().settings).open(output.storage_key)
    except (FileNotFoundError, ValueError):
        abort(404, "the stored file is missing")
    inline = output.content_type in PREVIEW_TYPES and not request.args.get("download")
    response = file_answer(
        handle,
        output.content_type if inline else "application/octet-stream",
        output.size_bytes,
    )
    response.headers.set(
        "Content-Disposition",
        "inline" if inline else "attachment",
        filename=download_name(task_id, index, output.content_type),
    )
    # Even an image is served as if it were hostile: no scripts, no sniffing.
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response
