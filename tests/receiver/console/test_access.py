"""Who may use the console: closed without a token, and tokens that must differ.

The session cookie holds no token, dies with a rotated one and is opened only under /console.
"""

from __future__ import annotations

import base64
import json
import zlib

import pytest
from flask import Flask
from flask.testing import FlaskClient

from receiver import create_app
from rivyahooks_foundation.settings import Settings, SettingsError
from rivyahooks_protocol.signatures import fingerprint
from tests.conftest import close_app
from tests.receiver.console.conftest import ADMIN_TOKEN, csrf_of, log_in


@pytest.mark.parametrize(
    "path", ["/console/", "/console/login", "/console/events", "/console/static/console.css"]
)
def test_console_is_404_without_a_token(client: FlaskClient, path: str) -> None:
    assert client.get(path).status_code == 404
    assert client.post(path, data={"token": "anything"}).status_code in (404, 405)


def test_same_token_for_both_roles_is_refused(settings: Settings) -> None:
    same = settings.replace(console_admin_token=ADMIN_TOKEN, console_readonly_token=ADMIN_TOKEN)
    with pytest.raises(SettingsError, match="CONSOLE_READONLY_TOKEN") as caught:
        create_app(same)
    assert ADMIN_TOKEN not in str(caught.value)


def test_short_token_is_refused_without_echoing_it() -> None:
    with pytest.raises(SettingsError, match="CONSOLE_ADMIN_TOKEN") as caught:
        Settings.from_env({"CONSOLE_ADMIN_TOKEN": "short-token"})
    assert "short-token" not in str(caught.value)


def _session_payload(cookie_value: str) -> dict[str, object]:
    # Flask's cookie: [.]base64(payload).timestamp.signature, the payload zlib'd when dotted.
    compressed = cookie_value.startswith(".")
    data = cookie_value.lstrip(".").split(".")[0]
    raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    return dict(json.loads(zlib.decompress(raw) if compressed else raw))


def test_session_cookie_is_hardened_and_holds_no_token(settings: Settings) -> None:
    app = create_app(settings.replace(console_admin_token=ADMIN_TOKEN))
    try:
        client = app.test_client()
        page = client.get("/console/login")
        response = client.post(
            "/console/login", data={"token": ADMIN_TOKEN, "csrf_token": csrf_of(page.text)}
        )
        header = response.headers["Set-Cookie"]
        assert "HttpOnly" in header
        assert "Secure" in header  # the default: only local development turns it off
        assert "SameSite=Lax" in header
        assert "Path=/console" in header
        value = header.split(";")[0].split("=", 1)[1]
        payload = _session_payload(value)
        assert payload["role"] == "admin"
        assert payload["token"] == fingerprint(ADMIN_TOKEN)
        assert ADMIN_TOKEN not in json.dumps(payload)
    finally:
        close_app(app)


def test_a_rotated_token_ends_the_session(console_settings: Settings) -> None:
    first = create_app(console_settings)
    client = first.test_client()
    log_in(client, ADMIN_TOKEN)
    cookie = client.get_cookie("rivya_console", path="/console")
    assert cookie is not None
    rotated = create_app(console_settings.replace(console_admin_token="b" * 40))
    try:
        later = rotated.test_client()
        later.set_cookie(cookie.key, cookie.value, path="/console")
        assert later.get("/console/").status_code == 302
    finally:
        close_app(first)
        close_app(rotated)


def test_only_console_requests_open_a_session(console_app: Flask) -> None:
    # Opening Flask's cookie session costs about as much as a whole delivery: a webhook
    # request (where the console's cookie is never sent) must not pay for it.
    from flask import session
    from flask.sessions import NullSession

    with console_app.test_request_context("/webhooks/rivya", method="POST"):
        assert isinstance(session._get_current_object(), NullSession)  # type: ignore[attr-defined]
    with console_app.test_request_context("/console/events"):
        assert not isinstance(session._get_current_object(), NullSession)  # type: ignore[attr-defined]
