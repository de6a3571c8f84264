"""Small JSON answers shared by the receiver's routes: never a body, secret or signature."""

from __future__ import annotations

import json
from typing import Any

from flask import Response


def json_answer(status: int, body: dict[str, Any], **headers: str) -> Response:
    """Return `body` as JSON with `status` and extra headers."""
    # What jsonify writes, without its app-context lookups: a third of the cost of the
    # receiver's answer went there.
    text = json.dumps(body, separators=(",", ":"), sort_keys=True) + "\n"
    return Response(text, status=status, headers=headers, mimetype="application/json")


def json_error(status: int, code: str, message: str | None = None, **headers: str) -> Response:
    """Return the error envelope, {"error": {"code": ..., "message": ...}} (message optional)."""
    error = {"code": code} if message is None else {"code": code, "message": message}
    return json_answer(status, {"error": error}, **headers)
