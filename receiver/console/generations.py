"""The generations: their list, newest first, and one generation's page with its outputs."""

from __future__ import annotations

from urllib.parse import urlencode

from flask import abort, render_template, request
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from models.event_pages import EventFilter, event_page
from models.generations import Generation, GenerationStatus
from receiver.console.blueprint import bp
from receiver.console.files import PREVIEW_TYPES
from receiver.console.list_query import PAGE_SIZE
from receiver.state import state


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
