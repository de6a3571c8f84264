"""The results API: what downstream apps read about generations and their stored files.

GET /results/feed        changes in commit order, from a cursor (long-poll with `wait`)
GET /results             generations, newest first
GET /results/<task_id>   one generation
GET /results/<task_id>/outputs/<index>   one stored file (or a redirect to a signed URL)
GET /openapi.json        this API's OpenAPI 3.1 document (public: it holds no data)

Every route but the document needs `Authorization: Bearer <one of RESULTS_API_TOKENS>`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Blueprint, Response, jsonify, redirect, request
from pydantic import BaseModel
from spectree import Response as Answers
from sqlalchemy import Select, func, select
from sqlalchemy.orm import joinedload
from werkzeug.exceptions import RequestedRangeNotSatisfiable

from models.generations import Generation, GenerationStatus, find_output
from models.result_documents import GenerationDocument, result_document
from receiver.bearer import bearer_denied
from receiver.responses import file_answer, json_error, served_type
from receiver.results_schema import (
    ErrorBody,
    FeedEntry,
    FeedPage,
    FeedQuery,
    ListPage,
    ListQuery,
    api,
)
from receiver.state import state
from storage import download_name, open_storage

log = logging.getLogger(__name__)

bp = Blueprint("results", __name__)
# The OpenAPI document is public: a blueprint of its own, outside `bp`'s bearer check.
contract_bp = Blueprint("contract", __name__)

# How often a long-poll looks for a change: one indexed query per waiter per interval.
FEED_POLL_SECONDS = 0.5
DENIED = {
    "HTTP_401": (ErrorBody, "Missing or wrong bearer token."),
    "HTTP_404": (ErrorBody, "Not found, or the API is closed (no RESULTS_API_TOKENS)."),
}


@bp.before_request
def _authorized() -> Response | None:
    return bearer_denied(state().settings.results_tokens(), "results_api_disabled")


def _document(
    generation: Generation, model: type[GenerationDocument] = GenerationDocument, **extra: Any
) -> GenerationDocument:
    return result_document(generation, download_name, model, **extra)


def _json(model: BaseModel) -> Response:
    return Response(model.model_dump_json(), mimetype="application/json")


def _with_outputs(query: Select[Generation]) -> Select[Generation]:
    # One statement with a join, not a second query: on PostgreSQL each statement has its
    # own snapshot, and a document must not mix two moments.
    return query.options(joinedload(Generation.outputs))


# --- the change feed -------------------------------------------------------------------


def _feed_rows(after: int, limit: int) -> list[Generation]:
    query = (
        select(Generation)
        .where(Generation.feed_position > after)
        .order_by(Generation.feed_position)
        .limit(limit + 1)
    )
    with state().sessions() as session:
        return list(session.scalars(_with_outputs(query)).unique())


@bp.get("/results/feed")
@api.validate(query=FeedQuery, resp=Answers(HTTP_200=FeedPage, **DENIED), tags=["results"])
def feed() -> Response:
    """Changes in the order they were committed, after a cursor.

    Each generation appears at its latest change with its whole document. An app that
    stores `next_cursor` and asks again sees every later change exactly once and never
    skips one. With `wait`, an empty answer is held until something changes (at most
    `wait` seconds).
    """
    query = FeedQuery.model_validate(request.args.to_dict())
    after = int(query.after or 0)
    rows = _feed_rows(after, query.limit)
    waiters = state().waiters
    if not rows and query.wait and waiters.try_enter(state().settings.results_feed_max_waiters):
        try:
            deadline = time.monotonic() + query.wait
            while not rows and time.monotonic() < deadline:
                time.sleep(min(FEED_POLL_SECONDS, max(0.0, deadline - time.monotonic())))
                rows = _feed_rows(after, query.limit)
        finally:
            waiters.leave()
    page = rows[: query.limit]
    entries = [
        _document(generation, FeedEntry, cursor=str(generation.feed_position))
        for generation in page
    ]
    return _json(
        FeedPage(
            object="list",
            data=entries,  # type: ignore[arg-type]
            next_cursor=entries[-1].cursor if entries else query.after,  # type: ignore[attr-defined]
            has_more=len(rows) > query.limit,
        )
    )


# --- generations -----------------------------------------------------------------------


@bp.get("/results")
@api.validate(query=ListQuery, resp=Answers(HTTP_200=ListPage, **DENIED), tags=["results"])
def list_results() -> Response:
    """Generations, newest first; page with `before`. To follow changes, use the feed."""
    query = ListQuery.model_validate(request.args.to_dict())
    statement = select(Generation).order_by(Generation.id.desc()).limit(query.limit + 1)
    if query.status is not None:
        statement = statement.where(Generation.status == GenerationStatus(query.status))
    if query.before is not None:
        statement = statement.where(Generation.id < query.before)
    if query.since is not None:
        created = func.coalesce(Generation.rivya_created_at, Generation.first_seen_at)
        statement = statement.where(created >= query.since)
    with state().sessions() as session:
        rows = list(session.scalars(_with_outputs(statement)).unique())
    page = rows[: query.limit]
    has_more = len(rows) > query.limit
    return _json(
        ListPage(
            object="list",
            data=[_document(generation) for generation in page],
            next_before=page[-1].id if has_more else None,
            has_more=has_more,
        )
    )


@bp.get("/results/<task_id>")
@api.validate(resp=Answers(HTTP_200=GenerationDocument, **DENIED), tags=["results"])
def get_result(task_id: str) -> Response:
    """One generation with its stored outputs."""
    with state().sessions() as session:
        generation = (
            session.scalars(_with_outputs(select(Generation).where(Generation.task_id == task_id)))
            .unique()
            .one_or_none()
        )
    if generation is None:
        return json_error(404, "not_found")
    return _json(_document(generation))


# --- files -----------------------------------------------------------------------------


@bp.get("/results/<task_id>/outputs/<int:index>")
@api.validate(
    resp=Answers(
        HTTP_200=(None, "The file; `ETag` is its sha256, `Range` is honoured."),
        HTTP_206=(None, "The requested range of the file."),
        HTTP_302=(None, "Object storage: the file at a short-lived signed URL."),
        HTTP_304=(None, "`If-None-Match` matched the sha256."),
        HTTP_416=(ErrorBody, "The range lies outside the file."),
        **{
            **DENIED,
            "HTTP_404": (
                ErrorBody,
                "No such output; the stored file is missing (`file_missing`); or the API is "
                "closed.",
            ),
        },
    ),
    tags=["results"],
    # spectree would read the whole body to validate it; a file is streamed untouched.
    skip_validation=True,
)
def get_output(task_id: str, index: int) -> Any:
    """One stored file: streamed with ETag, Range and a file name, or a signed URL."""
    settings = state().settings
    with state().sessions() as session:
        output = find_output(session, task_id, index)
    if output is None:
        return json_error(404, "not_found")
    storage = open_storage(settings)
    filename = download_name(task_id, index, output.content_type)
    content_type = served_type(output.content_type)
    if settings.results_file_delivery == "redirect":
        url = storage.signed_url(
            output.storage_key,
            filename=filename,
            content_type=content_type,
            seconds=settings.results_signed_url_seconds,
        )
        if url is not None:
            answer = redirect(url, 302)
            answer.headers["Cache-Control"] = "no-store"
            return answer
    try:
        handle = storage.open(output.storage_key)
    except FileNotFoundError:
        # Deleted behind our back (by hand, by a bucket's lifecycle rule): the row says it
        # was stored, so an operator must hear of it; the app gets a plain 404.
        log.error("stored file missing task_id=%s index=%d", task_id, index)
        return json_error(404, "file_missing", "the stored file is missing")
    answer = file_answer(handle, content_type, output.size_bytes)
    answer.set_etag(output.sha256)
    answer.headers.set("Content-Disposition", "attachment", filename=filename)
    # The bytes come from the result host: never let a browser sniff them into HTML, and
    # should one render them anyway, give the page no origin and no scripts.
    answer.headers["X-Content-Type-Options"] = "nosniff"
    answer.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    # The bytes under this URL never change once stored; only the token holder may cache.
    answer.cache_control.private = True
    answer.cache_control.max_age = 86400
    environ = request.environ
    if "," in environ.get("HTTP_RANGE", ""):
        # Several ranges would need a multipart answer; RFC 9110 lets a server ignore Range
        # and send the whole file instead, which every client handles.
        environ = {k: v for k, v in environ.items() if k != "HTTP_RANGE"}
    try:
        answer = answer.make_conditional(
            environ, accept_ranges=True, complete_length=output.size_bytes
        )
    except RequestedRangeNotSatisfiable:
        handle.close()
        return json_error(
            416, "range_not_satisfiable", **{"Content-Range": f"bytes */{output.size_bytes}"}
        )
    if answer.status_code == 304:
        handle.close()
    # A tuple, not the Response: spectree materialises a Response's body to inspect it,
    # and the body here may be gigabytes.
    return answer.response, answer.status_code, answer.headers


@contract_bp.get("/openapi.json")
def openapi() -> Response:
    """This API's OpenAPI 3.1 document, generated from the code."""
    return jsonify(api.spec)
