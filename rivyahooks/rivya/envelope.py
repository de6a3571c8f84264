"""Read a webhook event envelope after its signature has been verified.

An event is only a notification: what we need from it is its id, its type and the task id,
so that processing can re-fetch the generation from Rivya, the source of truth.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from rivyahooks.rivya import contract

MAX_ID_CHARS = 255


@dataclass(frozen=True)
class Envelope:
    event_id: str | None
    event_type: str | None
    task_id: str | None
    api_version: str | None
    created_at: str | None
    # Why this code cannot act on the event (stored as `quarantined`), or None.
    problem: str | None


def _short_str(value: Any) -> str | None:
    if isinstance(value, str) and 0 < len(value) <= MAX_ID_CHARS:
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
    event_type = _short_str(document.get("type"))
    api_version = _short_str(document.get("api_version"))
    created_at = _short_str(document.get("created_at"))
    data = document.get(contract.EVENT_DATA_KEY)
    task_id = _short_str(data.get(contract.EVENT_TASK_ID_KEY)) if isinstance(data, dict) else None
    problem = None
    if event_id is None:
        problem = "event has no id"
    elif event_type not in contract.EVENT_TYPES:
        problem = f"unknown event type {str(event_type)[:100]!r}"
    elif task_id is None:
        problem = "event has no task id"
    return Envelope(event_id, event_type, task_id, api_version, created_at, problem)
