"""Small JSON answers shared by the receiver's routes: never a body, secret or signature."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify


def json_answer(status: int, body: dict[str, Any], **headers: str) -> Response:
    """Return `body` as JSON with `status` and extra headers."""
    response = jsonify(body)
    response.status_code = status
    response.headers.update(headers)
    return response


def json_error(status: int, code: str, message: str | None = None, **headers: str) -> Response:
    """Return the error envelope, {"error": {"code": ..., "message": ...}} (message optional)."""
    error = {"code": code} if message is None else {"code": code, "message": message}
    return json_answer(status, {"error": error}, **headers)
