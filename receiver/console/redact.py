"""Make stored, attacker-influenced text safe to show an operator.

Bodies and errors are shown escaped (Jinja autoescapes) and bounded; on top of that no page
shows a result URL's signature (its query string), an API key, a signing secret or a
signature header in full.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_BODY_SHOWN_BYTES = 64 * 1024
MAX_TEXT_SHOWN_CHARS = 4000
ELIDED = "…"

# A URL's query and fragment carry the signature of a signed result URL.
_URL_QUERY = re.compile(r"(https?://[^\s?#\"'<>]+)[?#][^\s\"'<>]*", re.IGNORECASE)
# Rivya API keys and Standard Webhooks secrets, wherever they might have leaked into text.
_KEYS = re.compile(r"\b(rvya_[a-z]+_|whsec_)[A-Za-z0-9+/=_-]+")
SIGNATURE_HEADERS = frozenset({"webhook-signature", "x-rivya-signature"})


def redact_text(value: str | None, limit: int = MAX_TEXT_SHOWN_CHARS) -> str:
    """Return text without URL queries or keys, cut to `limit` characters."""
    if not value:
        return ""
    text = _KEYS.sub(lambda m: m.group(1) + ELIDED, value)
    text = _URL_QUERY.sub(lambda m: m.group(1) + "?" + ELIDED, text)
    return text if len(text) <= limit else text[:limit] + ELIDED


def _redact_json(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, list):
        return [_redact_json(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _redact_json(item) for key, item in value.items()}
    return value


def shown_body(body: bytes) -> tuple[str, bool]:
    """Return the body for display (pretty JSON when it parses) and whether it was cut."""
    cut = len(body) > MAX_BODY_SHOWN_BYTES
    head = body[:MAX_BODY_SHOWN_BYTES]
    if not cut:
        try:
            return json.dumps(_redact_json(json.loads(head)), indent=2, ensure_ascii=False), False
        except ValueError:
            pass
    return redact_text(head.decode("utf-8", "replace"), limit=MAX_BODY_SHOWN_BYTES), cut


def shown_headers(headers: dict[str, Any]) -> list[tuple[str, str]]:
    """Return stored headers for display; signatures only by their first characters."""
    shown = []
    for name in sorted(headers):
        value = str(headers[name])
        if name.lower() in SIGNATURE_HEADERS:
            value = value[:12] + ELIDED
        shown.append((name, redact_text(value, limit=500)))
    return shown
