"""What an admin may do to an app from the console: replay its messages, disable, enable it.

The same operations as `rivya-hooks apps replay/disable/enable`, each a CSRF-checked POST by
an admin, recorded as an operator action in the same transaction as the change it made, so
the record and the change exist together or not at all.
"""

from __future__ import annotations

from flask import flash, redirect, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from models.apps import App, enable
from models.clock import database_now
from models.operator_actions import record_action
from models.outbound import disable_app, replay
from receiver.console.access import admin_only
from receiver.console.apps import app_or_404
from receiver.console.blueprint import bp
from receiver.console.guard import operator
from receiver.console.list_query import time_arg
from receiver.state import state

DISABLED_REASON = "disabled by an operator from the console"


@bp.post("/apps/<name>/replay")
@admin_only
def app_replay(name: str) -> ResponseReturnValue:
    """Make the app's messages (since a time, or only the given-up ones) due again."""
    since = time_arg("since", request.form)
    failed_only = bool(request.form.get("failed_only"))
    with state().sessions.begin() as session:
        app = app_or_404(session, name)
        if not app.enabled:
            # A disabled app's deliveries would only be given up again: enable it first.
            flash(f"Nothing replayed: {app.name} is disabled; enable it first.", "warning")
            return redirect(url_for("console.app_detail", name=app.name))
        count = replay(
            session, app, since=since, failed_only=failed_only, now=database_now(session)
        )
        scope = "given-up messages" if failed_only else "messages"
        when = f" since {since.isoformat()}" if since else ""
        _record(session, "app_replay", app, f"{count} {scope}{when} made due again")
    flash(
        f"{count} message(s) made due again for {name}; the relay sends them.",
        "ok",
    )
    return redirect(url_for("console.app_detail", name=name))


@bp.post("/apps/<name>/disable")
@admin_only
def app_disable(name: str) -> ResponseReturnValue:
    """Stop sending to the app; what it has not received yet is given up (replay resends it)."""
    with state().sessions.begin() as session:
        app = app_or_404(session, name)
        if not app.enabled:
            flash(f"{app.name} was already disabled.", "warning")
            return redirect(url_for("console.app_detail", name=app.name))
        given_up = disable_app(session, app, DISABLED_REASON, database_now(session))
        _record(session, "app_disable", app, f"{given_up} open message(s) given up")
    flash(f"{name} disabled; {given_up} open message(s) given up.", "ok")
    return redirect(url_for("console.app_detail", name=name))


@bp.post("/apps/<name>/enable")
@admin_only
def app_enable(name: str) -> ResponseReturnValue:
    """Send the app new messages again; a replay sends what it missed."""
    with state().sessions.begin() as session:
        app = app_or_404(session, name)
        if app.enabled:
            flash(f"{app.name} was already enabled.", "warning")
            return redirect(url_for("console.app_detail", name=app.name))
        enable(app)
        _record(session, "app_enable", app, "enabled")
    flash(f"{name} enabled; replay it to send what it missed.", "ok")
    return redirect(url_for("console.app_detail", name=name))


def _record(session: Session, action: str, app: App, detail: str) -> None:
    who = operator()
    record_action(
        session,
        action=action,
        role=who.role,
        token_fingerprint=who.token_fingerprint,
        detail=f"app {app.name} ({app.id}): {detail}",
    )
