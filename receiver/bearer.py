"""Bearer-token checks of the non-public routes (results, metrics)."""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from flask import Response, request

from receiver.responses import json_error


def bearer_denied(tokens: Iterable[str], disabled_code: str) -> Response | None:
    """Return the refusal for this request, or None when it carries `Bearer <token>`.

    Several tokens allow rotation. No token configured keeps the route closed (404), rather
    than open to anyone who can reach the web process. The offered value is compared with
    every token, always all of them, each in constant time: the time taken says nothing
    about the offered value nor about which token came close.
    """
    expected = [f"Bearer {token}".encode() for token in tokens if token]
    if not expected:
        return json_error(404, disabled_code)
    offered = request.headers.get("Authorization", "").encode()
    matched = False
    for candidate in expected:
        matched |= hmac.compare_digest(offered, candidate)
    if not matched:
        return json_error(401, "unauthorized")
    return None
