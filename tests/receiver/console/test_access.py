"""Who may use the console: closed without a token, and tokens that must differ.

The session cookie holds no token, dies with a rotated one and is opened only under /console.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import secrets
import zlib

import pytest
from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from flask.testing import FlaskClient
from itsdangerous import BadSignature
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from models.base import utcnow
from models.console_sessions import ConsoleSession
from receiver import create_app
from receiver.console.access import console_access
from rivyahooks_foundation.settings import Settings, SettingsError
from rivyahooks_protocol.signatures import fingerprint
from tests.conftest import close_app
from tests.receiver.console.conftest import ADMIN_TOKEN, READONLY_TOKEN, csrf_of, log_in


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
        # Only a random session id: who it is, and until when, the server keeps.
        assert set(payload) <= {"sid", "csrf_token", "_permanent"}
        assert isinstance(payload["sid"], str)
        assert len(payload["sid"]) >= 40
        assert ADMIN_TOKEN not in json.dumps(payload)
        with app.extensions["rivyahooks"].sessions() as db:
            (row,) = db.scalars(select(ConsoleSession)).all()
        assert row.role == "admin"
        assert row.token_hash != payload["sid"]  # a leaked table opens no session
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


@pytest.mark.parametrize(
    "token", ["a" * 40, "passwordpasswordpassword", "0123012301230123012301230123"]
)
def test_a_token_a_person_made_up_is_refused_however_long(token: str) -> None:
    with pytest.raises(SettingsError, match="does not look random") as caught:
        Settings.from_env({"CONSOLE_ADMIN_TOKEN": token})
    assert token not in str(caught.value)


def test_generated_tokens_are_accepted() -> None:
    for token in (ADMIN_TOKEN, READONLY_TOKEN, secrets.token_urlsafe(24), secrets.token_hex(16)):
        assert Settings.from_env({"CONSOLE_ADMIN_TOKEN": token}).console_admin_token == token


def _token_derived_key() -> bytes:
    # How the signing key used to be made: from the two tokens, which a read-only operator
    # knows half of.
    material = b"\0".join(t.encode() for t in (ADMIN_TOKEN, READONLY_TOKEN))
    return hmac.new(
        material, b"rivya-hooks console session signing key v1", hashlib.sha256
    ).digest()


def test_a_cookie_does_not_verify_under_a_key_made_from_the_tokens(console_app: Flask) -> None:
    # Were the key derived from the tokens, a read-only operator holding a cookie could test
    # guesses of the admin token offline: compute the key, check the cookie's signature.
    client = console_app.test_client()
    log_in(client, READONLY_TOKEN)
    cookie = client.get_cookie("rivya_console", path="/console")
    assert cookie is not None
    serializer = SecureCookieSessionInterface().get_signing_serializer(console_app)
    assert serializer is not None
    assert serializer.loads(cookie.value)["sid"]  # the app's own key verifies it
    guessed = Flask("guess")
    guessed.secret_key = _token_derived_key()
    forger = SecureCookieSessionInterface().get_signing_serializer(guessed)
    assert forger is not None
    with pytest.raises(BadSignature):
        forger.loads(cookie.value)


def test_token_fingerprints_are_keyed(console_app: Flask) -> None:
    client = console_app.test_client()
    log_in(client, ADMIN_TOKEN)
    with console_app.app_context():
        keyed = console_access().fingerprint(ADMIN_TOKEN)
    with console_app.extensions["rivyahooks"].sessions() as db:
        (row,) = db.scalars(select(ConsoleSession)).all()
    # The plain sha256 fingerprint could be checked against guesses; the keyed one cannot.
    assert row.token_fingerprint == keyed
    assert keyed != fingerprint(ADMIN_TOKEN)
    assert client.get("/console/").text.count(f'title="token {keyed}"') == 1


def test_a_configured_session_key_signs_the_cookie(console_settings: Settings) -> None:
    key = secrets.token_bytes(32)
    app = create_app(console_settings.replace(console_session_key=key))
    try:
        client = app.test_client()
        log_in(client, ADMIN_TOKEN)
        cookie = client.get_cookie("rivya_console", path="/console")
        assert cookie is not None
        with_key = Flask("configured")
        with_key.secret_key = key
        serializer = SecureCookieSessionInterface().get_signing_serializer(with_key)
        assert serializer is not None
        assert serializer.loads(cookie.value)["sid"]
    finally:
        close_app(app)


def test_a_cookie_copied_before_logout_opens_nothing_after_it(console_app: Flask) -> None:
    client = console_app.test_client()
    csrf = log_in(client, ADMIN_TOKEN)
    copied = client.get_cookie("rivya_console", path="/console")
    assert copied is not None
    assert client.post("/console/logout", data={"csrf_token": csrf}).status_code == 302
    thief = console_app.test_client()
    thief.set_cookie(copied.key, copied.value, path="/console")
    answer = thief.get("/console/")
    assert answer.status_code == 302
    assert answer.headers["Location"].startswith("/console/login")


def test_a_session_ends_at_its_hour_however_active(
    console_app: Flask, sessions: sessionmaker[Session]
) -> None:
    client = console_app.test_client()
    log_in(client, ADMIN_TOKEN)
    with sessions() as db:
        (row,) = db.scalars(select(ConsoleSession)).all()
    assert row.expires_at - row.created_at == dt.timedelta(hours=12)
    for _ in range(3):  # a page that polls
        assert client.get("/console/", headers={"HX-Request": "true"}).status_code == 200
    with sessions() as db:
        assert db.scalars(select(ConsoleSession.expires_at)).one() == row.expires_at
    # Its twelve hours are up: the same cookie, however recently used, opens nothing.
    with sessions.begin() as db:
        db.execute(update(ConsoleSession).values(expires_at=utcnow() - dt.timedelta(seconds=1)))
    assert client.get("/console/").status_code == 302
