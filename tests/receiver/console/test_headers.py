"""Console pages carry the security headers."""

from __future__ import annotations

from flask import Flask

from tests.receiver.console.conftest import READONLY_TOKEN, log_in


def test_pages_carry_security_headers(console_app: Flask) -> None:
    client = console_app.test_client()
    log_in(client, READONLY_TOKEN)
    response = client.get("/console/events")
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-store"
