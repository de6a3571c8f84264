"""A generation's stored files, served to the console's session as if they were hostile."""

from __future__ import annotations

from flask import abort, request
from flask.typing import ResponseReturnValue

from models.generations import find_output
from receiver.console.blueprint import bp
from receiver.responses import file_answer
from receiver.state import state
from storage import download_name, open_storage

# Only these are shown inline as previews; anything else (SVG, HTML) is a download, since a
# stored file is whatever Rivya's URL returned.
PREVIEW_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})


@bp.get("/generations/<task_id>/outputs/<int:index>")
def output_file(task_id: str, index: int) -> ResponseReturnValue:
    """Serve a stored output to the console's session: inline for images, else a download.

    Read through the same storage code as the results API, but always streamed by this
    process: a redirect to object storage would put a signed URL in the operator's browser
    and leave the console's own origin (its CSP allows images from itself only).
    """
    with state().sessions() as session:
        output = find_output(session, task_id, index)
    if output is None:
        abort(404, "no such output")
    try:
        handle = open_storage(state().settings).open(output.storage_key)
    except (FileNotFoundError, ValueError):
        abort(404, "the stored file is missing")
    inline = output.content_type in PREVIEW_TYPES and not request.args.get("download")
    response = file_answer(
        handle,
        output.content_type if inline else "application/octet-stream",
        output.size_bytes,
    )
    response.headers.set(
        "Content-Disposition",
        "inline" if inline else "attachment",
        filename=download_name(task_id, index, output.content_type),
    )
    # Even an image is served as if it were hostile: no scripts, no sniffing.
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response
