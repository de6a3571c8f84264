"""Who may use the console: two tokens, a server-side session behind a signed cookie, CSRF.

The cookie carries a random session token, never an operator's token; the session's row
(models/console_sessions.py) says who it is and until when. Logout ends the row, so a copy
of the cookie opens nothing after it; a session ends CONSOLE_SESSION_HOURS after its login
however active it was; a session whose token is no longer configured (rotated, removed) is
refused on its next request. The key that signs cookies and keys the tokens' fingerprints
is random (CONSOLE_SESSION_KEY, or made once and kept in the database): nothing an operator
holds lets them test guesses of another operator's token.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, Request, abort, current_app, g, session
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect
from sqlalchemy.orm import Session, sessionmaker

from models import console_sessions
from rivyahooks_foundation.settings import Settings, SettingsError

log = logging.getLogger(__name__)

ADMIN = "admin"
READONLY = "readonly"
COOKIE_NAME = "rivya_console"
CONSOLE_PATH = "/console"
# Separates the fingerprints' use of the key from the cookie signer's.
_FINGERPRINT_LABEL = b"rivya-hooks console token fingerprint\0"


@dataclass(frozen=True)
class Operator:
    """The logged-in operator: a role and the fingerprint of the token used."""

    role: str
    token_fingerprint: str

    @property
    def may_replay(self) -> bool:
        return self.role == ADMIN


class SessionKey:
    """The console's signing key: from the settings, or read (made if new) from the database.

    Read on the first console request rather than at start, so a web process whose
    database is briefly away still starts and serves deliveries.
    """

    def __init__(self, configured: bytes | None, sessions: sessionmaker[Session]) -> None:
        self._key = configured
        self._sessions = sessions
        self._lock = threading.Lock()

    def get(self) -> bytes:
        if self._key is None:
            with self._lock:
                if self._key is None:
                    with self._sessions.begin() as db:
                        self._key = console_sessions.session_key(db)
        return self._key


@dataclass(frozen=True)
class ConsoleAccess:
    """What every console request is checked against: tokens, sessions, the key, CSRF."""

    tokens: dict[str, str]
    csrf: CSRFProtect
    key: SessionKey
    sessions: sessionmaker[Session]
    lifetime: dt.timedelta
    trusted_proxies: frozenset[str] = field(default_factory=frozenset)

    def fingerprint(self, token: str) -> str:
        """Return the token's fingerprint, keyed: it cannot be checked against guesses."""
        digest = hmac.new(self.key.get(), _FINGERPRINT_LABEL + token.encode(), hashlib.sha256)
        return digest.hexdigest()[:12]


def console_access() -> ConsoleAccess:
    """Return the current app's console tokens and CSRF protection."""
    value: ConsoleAccess = current_app.extensions["console"]
    return value


def configured_tokens(settings: Settings) -> dict[str, str]:
    """Return the configured tokens by role (empty: the console is closed)."""
    tokens = {ADMIN: settings.console_admin_token, READONLY: settings.console_readonly_token}
    tokens = {role: token for role, token in tokens.items() if token}
    if len(tokens) == 2 and hmac.compare_digest(tokens[ADMIN], tokens[READONLY]):
        raise SettingsError(
            "CONSOLE_ADMIN_TOKEN and CONSOLE_READONLY_TOKEN are the same: a read-only "
            "operator could replay. Give each its own token."
        )
    return tokens


class ConsoleSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, opened only for the console's own paths.

    Flask opens a session for every request before routing it, and building the cookie's
    signer costs about as much as a whole webhook delivery: everything outside the console
    (where the cookie is never sent anyway) gets Flask's free null session instead.
    """

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if not request.path.startswith(CONSOLE_PATH):
            return None
        if app.secret_key is None:
            app.secret_key = console_access().key.get()
        return super().open_session(app, request)


def configure_session(app: Flask, settings: Settings) -> None:
    """Set the signed-cookie session up: HttpOnly, SameSite, Secure unless told otherwise."""
    app.session_interface = ConsoleSessionInterface()
    app.config.update(
        # Set on the first console request (ConsoleSessionInterface), from SessionKey.
        SECRET_KEY=None,
        SESSION_COOKIE_NAME=COOKIE_NAME,
        # Only the console reads the cookie; the webhook endpoint never sees it.
        SESSION_COOKIE_PATH=CONSOLE_PATH,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SECURE=settings.console_secure_cookie,
        # Lax: a link from a pager or chat opens the console logged in; every action is a
        # POST, which Lax never sends cross-site and which carries a CSRF token besides.
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=dt.timedelta(hours=settings.console_session_hours),
        # CSRF is checked by the console's own routes, not on every POST of the app (Rivya's
        # deliveries carry a signature, not a form token).
        WTF_CSRF_CHECK_DEFAULT=False,
        # The token lives as long as the session, so a page left open still works.
        WTF_CSRF_TIME_LIMIT=None,
    )


def role_of(offered: str, tokens: dict[str, str]) -> str | None:
    """Return the role whose token was offered, comparing in constant time, or None."""
    found = None
    for role, token in tokens.items():
        # Compare with every token, even after a match, so timing says nothing.
        if hmac.compare_digest(offered.encode(), token.encode()):
            found = role
    return found


def log_in(role: str, access: ConsoleAccess) -> Operator:
    """Start a fresh session for `role` (nothing from before the login survives)."""
    session.clear()
    session.permanent = True
    operator = Operator(role, access.fingerprint(access.tokens[role]))
    with access.sessions.begin() as db:
        console_sessions.forget_expired_sessions(db)
        session["sid"] = console_sessions.open_session(
            db,
            role=operator.role,
            token_fingerprint=operator.token_fingerprint,
            lifetime=access.lifetime,
        )
    return operator


def log_out(access: ConsoleAccess) -> None:
    """End the session, server-side too: a copy of its cookie opens nothing any more."""
    token = session.get("sid")
    if isinstance(token, str):
        with access.sessions.begin() as db:
            console_sessions.end_session(db, token)
    session.clear()


def current_operator(access: ConsoleAccess) -> Operator | None:
    """Return the session's operator while the session lives and its token is configured."""
    token = session.get("sid")
    if not isinstance(token, str):
        return None
    with access.sessions() as db:
        live = console_sessions.live_session(db, token)
    if live is None or live.role not in access.tokens:
        return None
    if not hmac.compare_digest(
        live.token_fingerprint, access.fingerprint(access.tokens[live.role])
    ):
        return None
    return Operator(live.role, live.token_fingerprint)


F = TypeVar("F", bound=Callable[..., Any])


def admin_only(view: F) -> F:
    """Refuse the view (403) to a read-only operator."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        operator: Operator | None = g.get("operator")
        if operator is None or not operator.may_replay:
            log.warning(
                "console action refused role=%s", operator.role if operator else "anonymous"
            )
            abort(403)
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
