"""Logging in to the console with a token, and out again; a client guessing tokens is slowed.

Refused logins are counted per client address (from X-Forwarded-For only when the request
came through a proxy of TRUSTED_PROXIES); past LOGIN_FAILURES_ALLOWED within the window,
that address is answered 429 until the window has passed.
"""

from __future__ import annotations

import datetime as dt
import logging

from flask import g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from models import console_sessions
from receiver.console.access import ConsoleAccess, console_access, log_in, log_out, role_of
from receiver.console.blueprint import bp

LOGIN_FAILURES_ALLOWED = 10
LOGIN_FAILURE_WINDOW = dt.timedelta(minutes=15)

log = logging.getLogger(__name__)


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    """Take a token, open a session for its role."""
    target = _local_path(request.values.get("next"))
    if request.method == "GET":
        if g.operator is not None:
            return redirect(target)
        return render_template("console/login.html", next=target)
    access = console_access()
    address = client_address(access)
    with access.sessions() as db:
        failures = console_sessions.login_failures(db, address, LOGIN_FAILURE_WINDOW)
    if failures >= LOGIN_FAILURES_ALLOWED:
        log.warning("console login refused: too many attempts from %s", address)
        minutes = int(LOGIN_FAILURE_WINDOW.total_seconds() // 60)
        return render_template("console/login.html", next=target, throttled=minutes), 429
    role = role_of(request.form.get("token", ""), access.tokens)
    if role is None:
        with access.sessions.begin() as db:
            console_sessions.record_login_failure(db, address, LOGIN_FAILURE_WINDOW)
        log.warning("console login refused from %s", address)
        return render_template("console/login.html", next=target, refused=True), 401
    who = log_in(role, access)
    log.info("console login role=%s token=%s", who.role, who.token_fingerprint)
    return redirect(target)


def _local_path(target: str | None) -> str:
    # Only a path of the console itself, so a crafted link cannot send an operator elsewhere.
    if target and target.startswith("/console/") and not target.startswith("/console//"):
        return target
    return url_for("console.overview")


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    """End the session."""
    log_out(console_access())
    return redirect(url_for("console.login"))


def client_address(access: ConsoleAccess) -> str:
    """Return the client's address: X-Forwarded-For's last hop not a trusted proxy, if any.

    Each proxy appends the address it was called from, so reading from the right and
    skipping our own proxies finds the first address no trusted proxy vouches for.
    """
    address = request.remote_addr or "unknown"
    if address not in access.trusted_proxies:
        return address
    hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
    for hop in reversed(hops):
        if hop not in access.trusted_proxies:
            return hop
    return hops[0] if hops else address
