"""Logging in needs the right token and a CSRF token; logging out needs a CSRF token."""

from __future__ import annotations

from flask import Flask

from tests.receiver.console.conftest import ADMIN_TOKEN, READONLY_TOKEN, csrf_of, log_in


def test_wrong_token_is_refused(console_app: Flask) -> None:
    client = console_app.test_client()
    page = client.get("/console/login")
    refused = client.post(
        "/console/login", data={"token": ADMIN_TOKEN + "x", "csrf_token": csrf_of(page.text)}
    )
    assert refused.status_code == 401
    assert client.get("/console/").status_code == 302


def test_login_without_csrf_token_is_refused(console_app: Flask) -> None:
    client = console_app.test_client()
    client.get("/console/login")
    assert client.post("/console/login", data={"token": ADMIN_TOKEN}).status_code == 400
    assert client.get("/console/").status_code == 302


def test_logout_needs_csrf_and_ends_the_session(console_app: Flask) -> None:
    client = console_app.test_client()
    csrf = log_in(client, READONLY_TOKEN)
    assert client.post("/console/logout").status_code == 400
    assert client.get("/console/").status_code == 200
    assert client.post("/console/logout", data={"csrf_token": csrf}).status_code == 302
    assert client.get("/console/").status_code == 302
