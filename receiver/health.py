"""Liveness and readiness."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify
from sqlalchemy import func, select, text

from models.base import utcnow
from models.events import UNFINISHED_STATUSES, EventStatus, WebhookEvent
from models.generations import Generation, GenerationOutput, GenerationStatus
from receiver.state import state

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """Answer while the process is alive; checks nothing else on purpose."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    """Answer 200 only when the database and the broker are reachable."""
    shared = state()
    failing: list[str] = []
    try:
        with shared.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        log.warning("readiness: database unreachable error=%s", type(exc).__name__)
        failing.append("database")
    try:
        shared.enqueuer.ping()
    except Exception as exc:
        log.warning("readiness: broker unreachable error=%s", type(exc).__name__)
        failing.append("broker")
    response = jsonify({"status": "unavailable" if failing else "ready", "failing": failing})
    response.status_code = 503 if failing else 200
    return response


@bp.get("/metrics")
def metrics() -> Response:
    """Counts an alerting system can scrape (Prometheus text format); no secrets, no ids."""
    with state().sessions() as session:
        events = dict(
            session.execute(
                select(WebhookEvent.status, func.count()).group_by(WebhookEvent.status)
            ).all()
        )
        generations = dict(
            session.execute(
                select(Generation.status, func.count()).group_by(Generation.status)
            ).all()
        )
        anomalies = session.scalar(select(func.count()).where(Generation.anomaly.is_not(None)))
        files, size = session.execute(
            select(func.count(), func.coalesce(func.sum(GenerationOutput.size_bytes), 0))
        ).one()
        oldest = session.scalar(
            select(func.min(WebhookEvent.received_at)).where(
                WebhookEvent.status.in_(UNFINISHED_STATUSES)
            )
        )
    age = 0.0 if oldest is None else (utcnow() - oldest).total_seconds()
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
