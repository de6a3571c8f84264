"""GET /results: what downstream apps read about generations and their stored files."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from models.generations import Generation, GenerationStatus
from receiver.bearer import bearer_denied
from receiver.responses import json_error
from receiver.state import state

bp = Blueprint("results", __name__)
PAGE_LIMIT = 100


def _authorized() -> Response | None:
    return bearer_denied(state().settings.results_api_token, "results_api_disabled")


def generation_document(generation: Generation) -> dict[str, Any]:
    """Return the public JSON form of a generation and its stored outputs."""
    return {
        "task_id": generation.task_id,
        "model": generation.model,
        "status": generation.status.value,
        "reserved_credits": generation.reserved_credits,
        "final_credits": generation.final_credits,
        "error": (
            {"code": generation.error_code, "message": generation.error_message}
            if generation.error_code or generation.error_message
            else None
        ),
        "anomaly": generation.anomaly,
        "results_stored_at": _iso(generation.results_stored_at),
        "updated_at": _iso(generation.rivya_updated_at),
        "outputs": [
            {
                "index": output.index,
                "content_type": output.content_type,
                "size_bytes": output.size_bytes,
                "sha256": output.sha256,
                "storage_key": output.storage_key,
                "stored_at": _iso(output.stored_at),
            }
            for output in generation.outputs
        ],
    }


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()


@bp.get("/results/<task_id>")
def get_result(task_id: str) -> Response:
    """Return one generation with its outputs."""
    if (denied := _authorized()) is not None:
        return denied
    with state().sessions() as session:
        generation = session.scalars(
            select(Generation)
            .where(Generation.task_id == task_id)
            .options(selectinload(Generation.outputs))
        ).one_or_none()
        if generation is None:
            return json_error(404, "not_found")
        return jsonify(generation_document(generation))


@bp.get("/results")
def list_results() -> Response:
    """Return generations, newest first, paged by `before` (an internal id)."""
    if (denied := _authorized()) is not None:
        return denied
    query = (
        select(Generation)
        .options(selectinload(Generation.outputs))
        .order_by(Generation.id.desc())
        .limit(PAGE_LIMIT)
    )
    status = request.args.get("status")
    if status:
        if status not in {s.value for s in GenerationStatus}:
            return json_error(400, "invalid_status")
        query = query.where(Generation.status == GenerationStatus(status))
    before = request.args.get("before", type=int)
    if before:
        query = query.where(Generation.id < before)
    with state().sessions() as session:
        rows = list(session.scalars(query))
        return jsonify(
            {
                "data": [generation_document(g) for g in rows],
                "next_before": rows[-1].id if len(rows) == PAGE_LIMIT else None,
            }
        )
