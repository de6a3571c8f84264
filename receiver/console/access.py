"""Who may use the console: two tokens, a signed session cookie, CSRF on every action.

The session holds the role and a fingerprint of the token that opened it, never the token.
A session whose token is no longer configured (rotated, removed) is logged out on its next
request, and the signing key is derived from the tokens, so rotating a token also voids
every cookie signed before.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, Request, abort, current_app, g, session
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect

from rivyahooks_foundation.settings import Settings, SettingsError
from rivyahooks_protocol.signatures import fingerprint

log = logging.getLogger(__name__)

ADMIN = "admin"
READONLY = "readonly"
SESSION_LIFETIME = dt.timedelta(hours=8)
COOKIE_NAME = "rivya_console"
CONSOLE_PATH = "/console"
_KEY_LABEL = b"rivya-hooks console session signing key v1"


@dataclass(frozen=True)
class Operator:
    """The logged-in operator: a role and the fingerprint of the token used."""

    role: str
    token_fingerprint: str

    @property
    def may_replay(self) -> bool:
        return self.role == ADMIN


@dataclass(frozen=True)
class ConsoleAccess:
    """What every console request is checked against: the tokens by role, and CSRF."""

    tokens: dict[str, str]
    csrf: CSRFProtect


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


def session_signing_key(tokens: dict[str, str]) -> bytes:
    """Derive the cookie signing key from the tokens (no constant in code, no extra setting)."""
    material = b"\0".join(tokens[role].encode() for role in sorted(tokens))
    return hmac.new(material, _KEY_LABEL, hashlib.sha256).digest()


class ConsoleSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, opened only for the console's own paths.

    Flask opens a session for every request before routing it, and building the cookie's
    signer costs about as much as a whole webhook delivery: everything outside the console
    (where the cookie is never sent anyway) gets Flask's free null session instead.
    """

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if not request.path.startswith(CONSOLE_PATH):
            return None
        return super().open_session(app, request)


def configure_session(app: Flask, settings: Settings, tokens: dict[str, str]) -> None:
    """Set the signed-cookie session up: HttpOnly, SameSite, Secure unless told otherwise."""
    app.session_interface = ConsoleSessionInterface()
    app.config.update(
        SECRET_KEY=session_signing_key(tokens),
        SESSION_COOKIE_NAME=COOKIE_NAME,
        # Only the console reads the cookie; the webhook endpoint never sees it.
        SESSION_COOKIE_PATH=CONSOLE_PATH,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SECURE=settings.console_secure_cookie,
        # Lax: a link from a pager or chat opens the console logged in; every action is a
        # POST, which Lax never sends cross-site and which carries a CSRF token besides.
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
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


def log_in(role: str, tokens: dict[str, str]) -> Operator:
    """Start a fresh session for `role` (nothing from before the login survives)."""
    session.clear()
    session.permanent = True
    operator = Operator(role, fingerprint(tokens[role]))
    session["role"] = operator.role
    session["token"] = operator.token_fingerprint
    return operator


def current_operator(tokens: dict[str, str]) -> Operator | None:
    """Return the session's operator while its token is still the configured one."""
    role = session.get("role")
    recorded = session.get("token")
    if not isinstance(role, str) or not isinstance(recorded, str) or role not in tokens:
        return None
    if not hmac.compare_digest(recorded, fingerprint(tokens[role])):
        return None
    return Operator(role, recorded)


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
