"""What the platform polls: liveness, readiness and this process's metrics."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify
from sqlalchemy import text

from receiver.bearer import bearer_denied
from receiver.state import state
from rivyahooks_foundation.metrics.exposition import CONTENT_TYPE_LATEST, latest, process_registry

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """Answer while the process is alive; checks nothing else on purpose."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    """Answer 200 only when the database is reachable: the receiver's one dependency.

    The broker is the relay's business: a broker outage changes nothing for deliveries.
    """
    shared = state()
    failing: list[str] = []
    try:
        with shared.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        log.warning("readiness: database unreachable error=%s", type(exc).__name__)
        failing.append("database")
    response = jsonify({"status": "unavailable" if failing else "ready", "failing": failing})
    response.status_code = 503 if failing else 200
    return response


@bp.get("/metrics")
def metrics() -> Response:
    """This web process's counters (every gunicorn worker's); needs `Bearer $METRICS_TOKEN`.

    Database gauges are beat's, computed once per interval there, never per scrape here.
    """
    if (denied := bearer_denied((state().settings.metrics_token,), "metrics_disabled")) is not None:
        return denied
    return Response(latest(process_registry()), content_type=CONTENT_TYPE_LATEST)
