"""Bearer-token checks of the non-public routes (results, metrics)."""

from __future__ import annotations

import hmac

from flask import Response, request

from receiver.responses import json_error


def bearer_denied(token: str, disabled_code: str) -> Response | None:
    """Return the refusal for this request, or None when it carries `Bearer <token>`.

    No token configured keeps the route closed (404), rather than open to anyone who can
    reach the web process. The comparison takes the same time whatever the offered value.
    """
    if not token:
        return json_error(404, disabled_code)
    offered = request.headers.get("Authorization", "")
    if not hmac.compare_digest(offered.encode(), f"Bearer {token}".encode()):
        return json_error(401, "unauthorized")
    return None
