"""Read a webhook event envelope after its signature has been verified.

An event is only a notification: what we need from it is its id, its type and the task id,
so that processing can re-fetch the generation from Rivya, the source of truth.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from rivyahooks_protocol import contract

# The widths of the columns these fields are stored in (models.events.WebhookEvent): a
# longer value is dropped here rather than failing the insert, which would answer a genuine
# delivery with a 5xx on every retry.
MAX_ID_CHARS = 255
MAX_TYPE_CHARS = 100
MAX_API_VERSION_CHARS = 32


@dataclass(frozen=True)
class Envelope:
    event_id: str | None
    event_type: str | None
    task_id: str | None
    api_version: str | None
    created_at: str | None
    # Why this code cannot act on the event (stored as `quarantined`), or None.
    problem: str | None


def _short_str(value: Any, limit: int = MAX_ID_CHARS) -> str | None:
    # Control characters are refused too: PostgreSQL cannot store a NUL in a text column.
    if isinstance(value, str) and 0 < len(value) <= limit and value.isprintable():
        return value
    return None


def parse_envelope(body: bytes) -> Envelope:
    """Parse `body` leniently: unknown fields are ignored, problems are reported, not raised."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return Envelope(None, None, None, None, None, "body is not JSON")
    return envelope_from_dict(document)


def envelope_from_dict(document: Any) -> Envelope:
    """Interpret an already-decoded event (e.g. one listed by the event log)."""
    if not isinstance(document, dict):
        return Envelope(None, None, None, None, None, "body is not a JSON object")
    event_id = _short_str(document.get("id"))
    raw_type = document.get("type")
    event_type = _short_str(raw_type, MAX_TYPE_CHARS)
    api_version = _short_str(document.get("api_version"), MAX_API_VERSION_CHARS)
    created_at = _short_str(document.get("created_at"))
    data = document.get(contract.EVENT_DATA_KEY)
    task_id = _short_str(data.get(contract.EVENT_TASK_ID_KEY)) if isinstance(data, dict) else None
    problem = None
    if event_id is None:
        problem = "event has no id"
    elif event_type not in contract.EVENT_TYPES:
        problem = f"unknown event type {str(raw_type)[:100]!r}"
    elif task_id is None:
        problem = "event has no task id"
    return Envelope(event_id, event_type, task_id, api_version, created_at, problem)
