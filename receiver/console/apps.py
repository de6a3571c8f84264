"""The apps results are pushed to: their list, one app's page with its attempts, a replay preview.

What `rivya-hooks apps list/show` print, never a secret (describe() leaves them out); the
actions on an app are in app_actions.py.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import abort, render_template, request
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from models.apps import App, all_apps, describe, find_app
from models.clock import database_now
from models.outbound import OPEN_STATUSES, DeliveryStatus, backlog_by_app, replay
from receiver.console.attempts import attempt_page, deliveries_by_status
from receiver.console.blueprint import bp
from receiver.console.list_query import PAGE_SIZE, page_cursor, time_arg
from receiver.state import state

# describe() gives these as ISO text, for JSON; the pages show times with the `when` filter.
TIMES = ("disabled_at", "failing_since", "previous_secret_until", "created_at")


def shown(app: App) -> dict[str, Any]:
    """Return what the pages show of an app: describe()'s fields, never a secret."""
    return {**describe(app), **{name: getattr(app, name) for name in TIMES}}


def app_or_404(session: Session, name: str) -> App:
    app = find_app(session, name)
    if app is None:
        abort(404, "no such app")
    return app


@bp.get("/apps")
def apps() -> ResponseReturnValue:
    """Every app: enabled or why not, its events, what it has not received yet, its URL."""
    with state().sessions() as session:
        backlog = backlog_by_app(session)
        rows = [{**shown(app), "backlog": backlog.get(app.id, 0)} for app in all_apps(session)]
    return render_template("console/apps.html", apps=rows)


@bp.get("/apps/<name>")
def app_detail(name: str) -> ResponseReturnValue:
    """One app: its settings and public key, its deliveries by status, its attempts."""
    after = page_cursor()
    with state().sessions() as session:
        app = app_or_404(session, name)
        view = shown(app)
        by_status = deliveries_by_status(session, app.id)
        page = attempt_page(session, app.id, after, PAGE_SIZE)
    return render_template(
        "console/app.html",
        app=view,
        by_status=by_status,
        statuses=list(DeliveryStatus),
        backlog=sum(by_status.get(status, 0) for status in OPEN_STATUSES),
        attempts=page.rows,
        first_page=after is None,
        next_url=(
            "?" + urlencode({"after": page.next_cursor.encode()}) if page.next_cursor else None
        ),
    )


@bp.get("/apps/<name>/replay/preview")
def app_replay_preview(name: str) -> ResponseReturnValue:
    """How many messages a replay would make due again (a dry run: nothing changes)."""
    since = time_arg("since")
    failed_only = bool(request.args.get("failed_only"))
    with state().sessions() as session:
        app = app_or_404(session, name)
        count = replay(
            session,
            app,
            since=since,
            failed_only=failed_only,
            now=database_now(session),
            dry_run=True,
        )
        view = shown(app)
    return render_template(
        "console/app_replay_preview.html",
        app=view,
        count=count,
        since=request.args.get("since", "").strip(),
        since_time=since,
        failed_only=failed_only,
    )
