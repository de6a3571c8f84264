"""Answers shared by the web role's routes.

JSON ones are small and never carry a body, secret or signature; files are streamed.
"""

from __future__ import annotations

import json
from typing import IO, Any

from flask import Response
from werkzeug.wsgi import FileWrapper

# Read a stored file this much at a time: memory stays bounded whatever its size.
FILE_BLOCK_BYTES = 64 * 1024


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


def file_answer(handle: IO[bytes], mimetype: str | None, size: int) -> Response:
    """Return a response that streams an open stored file of `size` bytes, then closes it."""
    answer = Response(
        FileWrapper(handle, FILE_BLOCK_BYTES), mimetype=mimetype, direct_passthrough=True
    )
    answer.content_length = size
    return answer
