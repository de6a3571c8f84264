"""Storage keys and download names: derived from the output alone, so every worker agrees.

Keys carry the task id, the output index and the sha256, so two workers that store the same
output write the same bytes to the same key.
"""

from __future__ import annotations

import hashlib
import re

# Matched whole (fullmatch): with `$`, a trailing newline would pass.
_SAFE = re.compile(r"[A-Za-z0-9_.-]{1,200}")

# Extensions by content type. A fixed table rather than the mimetypes module: that one reads
# the host's mime.types, and two workers must derive the same key for the same output.
EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
    "image/gif": ".gif",
    "image/avif": ".avif",
    "image/svg+xml": ".svg",
    "video/mp4": ".mp4",
    "video/webm": ".webm",
    "video/quicktime": ".mov",
    "audio/mpeg": ".mp3",
    "audio/mp4": ".m4a",
    "audio/aac": ".aac",
    "audio/wav": ".wav",
    "audio/x-wav": ".wav",
    "audio/wave": ".wav",
    "audio/ogg": ".ogg",
    "audio/flac": ".flac",
    "audio/webm": ".weba",
    "application/json": ".json",
    "text/plain": ".txt",
}
DEFAULT_EXTENSION = ".bin"


def extension_for(content_type: str | None) -> str:
    """Return the file extension of a content type (parameters ignored), `.bin` if unknown."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return EXTENSIONS.get(media_type, DEFAULT_EXTENSION)


def output_key(task_id: str, index: int, sha256: str, content_type: str | None = None) -> str:
    """Return the storage key of one output; unsafe task ids are replaced by a hash."""
    folder = task_id if _SAFE.fullmatch(task_id) and not task_id.startswith(".") else None
    if folder is None:
        folder = "id-" + hashlib.sha256(task_id.encode()).hexdigest()[:32]
    return f"{folder}/{index:04d}-{sha256}{extension_for(content_type)}"


def download_name(task_id: str, index: int, content_type: str | None) -> str:
    """Return the file name an app is offered for one output."""
    folder = task_id if _SAFE.fullmatch(task_id) and not task_id.startswith(".") else "result"
    return f"{folder}-{index}{extension_for(content_type)}"
