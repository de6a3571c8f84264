"""Replaying dead and quarantined events: their list, a dry-run preview, and the replays.

Every replay is a CSRF-checked POST by an admin, recorded with who and when (see replay.py).
"""

from __future__ import annotations

from urllib.parse import urlencode

from flask import abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from models.event_pages import selected_event_ids
from receiver.console import replay
from receiver.console.access import admin_only
from receiver.console.blueprint import bp
from receiver.console.events import events_context
from receiver.console.guard import operator
from receiver.console.list_query import event_filter, filter_args
from receiver.state import state


@bp.get("/dead")
def dead() -> ResponseReturnValue:
    """Dead and quarantined events, filtered, with a replay of the selection."""
    return render_template("console/dead.html", **events_context(replay.REPLAYABLE))


@bp.get("/dead/preview")
def dead_preview() -> ResponseReturnValue:
    """What a replay of the selection would do (a dry run: nothing changes)."""
    selected = event_filter(replay.REPLAYABLE)
    with state().sessions() as session:
        ids = selected_event_ids(session, selected, replay.MAX_BATCH + 1)
        planned = replay.plan(session, ids)
    return render_template(
        "console/replay_preview.html",
        planned=planned,
        more=len(ids) > replay.MAX_BATCH,
        limit=replay.MAX_BATCH,
        args=filter_args(),
        query=urlencode(filter_args()),
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
