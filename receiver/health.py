"""Liveness and readiness."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify
from sqlalchemy import func, select, text

from models.base import utcnow
from models.db import count_by
from models.events import EventStatus, WebhookEvent
from models.generations import Generation, GenerationOutput, GenerationStatus
from models.inbox import oldest_unfinished_event
from receiver.state import state

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
    """Counts an alerting system can scrape (Prometheus text format); no secrets, no ids."""
    with state().sessions() as session:
        events = count_by(session, WebhookEvent.status)
        generations = count_by(session, Generation.status)
        anomalies = session.scalar(select(func.count()).where(Generation.anomaly.is_not(None)))
        files, size = session.execute(
            select(func.count(), func.coalesce(func.sum(GenerationOutput.size_bytes), 0))
        ).one()
        oldest = oldest_unfinished_event(session)
    age = 0.0 if oldest is None else (utcnow() - oldest.received_at).total_seconds()
    lines = ["# TYPE rivyahooks_events gauge"]
    lines += [f'rivyahooks_events{{status="{s.value}"}} {events.get(s, 0)}' for s in EventStatus]
    lines.append("# TYPE rivyahooks_generations gauge")
    lines += [
        f'rivyahooks_generations{{status="{s.value}"}} {generations.get(s, 0)}'
        for s in GenerationStatus
    ]
    lines += [
        "# TYPE rivyahooks_generation_anomalies gauge",
        f"rivyahooks_generation_anomalies {anomalies or 0}",
        "# TYPE rivyahooks_outputs_stored gauge",
        f"rivyahooks_outputs_stored {files}",
        "# TYPE rivyahooks_output_bytes_stored gauge",
        f"rivyahooks_output_bytes_stored {int(size)}",
        "# TYPE rivyahooks_oldest_unprocessed_event_age_seconds gauge",
        f"rivyahooks_oldest_unprocessed_event_age_seconds {age:.0f}",
    ]
    return Response("\n".join(lines) + "\n", mimetype="text/plain; version=0.0.4")
