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


# What a stored file may be served as: the media types whose bytes a browser only displays.
# A stored file is whatever the result host sent, so anything else (HTML, SVG, scripts,
# types we do not know) goes out as opaque bytes.
SERVED_TYPES = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/webp",
        "image/gif",
        "image/avif",
        "video/mp4",
        "video/webm",
        "video/quicktime",
        "audio/mpeg",
        "audio/mp4",
        "audio/aac",
        "audio/wav",
        "audio/x-wav",
        "audio/wave",
        "audio/ogg",
        "audio/flac",
        "audio/webm",
        "application/json",
        "text/plain",
    }
)
OPAQUE_TYPE = "application/octet-stream"


def served_type(content_type: str | None) -> str:
    """Return the type a stored file is served as: its own if allowed, else opaque bytes."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return media_type if media_type in SERVED_TYPES else OPAQUE_TYPE


class ExactFile(FileWrapper):
    """A stored file streamed in blocks, failing if it ends before its recorded size.

    Once the headers of a 200 are out, the only honest way to report a failure is to stop
    sending: an exception makes the server close the connection, where a quiet early end
    would leave the client a short file that looks complete (or waiting for the rest).
    """

    def __init__(self, handle: IO[bytes], size: int) -> None:
        super().__init__(handle, FILE_BLOCK_BYTES)
        self.size = size
        self.position = 0

    def seek(self, offset: int, whence: int = 0) -> None:
        super().seek(offset, whence)
        self.position = self.file.tell()

    def __next__(self) -> bytes:
        try:
            block = super().__next__()
        except StopIteration:
            if self.position < self.size:
                self.close()
                raise OSError(
                    f"the stored file ended after {self.position} of {self.size} bytes"
                ) from None
            raise
        self.position += len(block)
        return block


def file_answer(handle: IO[bytes], mimetype: str | None, size: int) -> Response:
    """Return a response that streams an open stored file of `size` bytes, then closes it."""
    answer = Response(ExactFile(handle, size), mimetype=mimetype, direct_passthrough=True)
    answer.content_length = size
    return answer
