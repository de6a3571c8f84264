"""Logging in needs the right token and a CSRF token, and is limited per client address;
logging out needs a CSRF token."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from receiver.console.login import LOGIN_FAILURES_ALLOWED
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


def _refuse(client: FlaskClient, times: int, **request: Any) -> None:
    page = client.get("/console/login", **request)
    for _ in range(times):
        answer = client.post(
            "/console/login",
            data={"token": "wrong-" + "x" * 30, "csrf_token": csrf_of(page.text)},
            **request,
        )
        assert answer.status_code == 401


def _try(client: FlaskClient, token: str, **request: Any) -> int:
    page = client.get("/console/login", **request)
    return client.post(
        "/console/login", data={"token": token, "csrf_token": csrf_of(page.text)}, **request
    ).status_code


def test_logins_are_limited_per_client_address(console_app: Flask) -> None:
    guesser = {"environ_base": {"REMOTE_ADDR": "203.0.113.9"}}
    client = console_app.test_client()
    _refuse(client, LOGIN_FAILURES_ALLOWED, **guesser)
    # Past the limit even the right token is refused, so guessing gains nothing.
    assert _try(client, ADMIN_TOKEN, **guesser) == 429
    # Another client is not locked out by it.
    other = console_app.test_client()
    assert _try(other, ADMIN_TOKEN, environ_base={"REMOTE_ADDR": "203.0.113.10"}) == 302


def test_x_forwarded_for_counts_only_from_a_trusted_proxy(console_app: Flask) -> None:
    # Straight from a client, a forged X-Forwarded-For changes nothing: still its address.
    direct = {
        "environ_base": {"REMOTE_ADDR": "203.0.113.9"},
        "headers": {"X-Forwarded-For": "198.51.100.1"},
    }
    _refuse(console_app.test_client(), LOGIN_FAILURES_ALLOWED, **direct)
    spoofed = {
        "environ_base": {"REMOTE_ADDR": "203.0.113.9"},
        "headers": {"X-Forwarded-For": "198.51.100.2"},
    }
    assert _try(console_app.test_client(), ADMIN_TOKEN, **spoofed) == 429
    # Through the local proxy (loopback is trusted by default) each client counts apart.
    proxied = {
        "environ_base": {"REMOTE_ADDR": "127.0.0.1"},
        "headers": {"X-Forwarded-For": "198.51.100.3"},
    }
    _refuse(console_app.test_client(), LOGIN_FAILURES_ALLOWED, **proxied)
    assert _try(console_app.test_client(), ADMIN_TOKEN, **proxied) == 429
    neighbour = {
        "environ_base": {"REMOTE_ADDR": "127.0.0.1"},
        "headers": {"X-Forwarded-For": "198.51.100.4"},
    }
    assert _try(console_app.test_client(), ADMIN_TOKEN, **neighbour) == 302
