"""The overview page: deliveries, backlog, losses, dead events, reconcile and secrets."""

from __future__ import annotations

from flask import Response, jsonify, render_template, request
from flask.typing import ResponseReturnValue

from models.base import utcnow
from models.events import EventStatus
from receiver.console import figures
from receiver.console.blueprint import bp
from receiver.state import state


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
