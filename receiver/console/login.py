"""Logging in to the console with a token, and out again."""

from __future__ import annotations

import logging

from flask import g, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue

from receiver.console.access import console_access, log_in, role_of
from receiver.console.blueprint import bp

log = logging.getLogger(__name__)


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    """Take a token, open a session for its role."""
    target = _local_path(request.values.get("next"))
    if request.method == "GET":
        if g.operator is not None:
            return redirect(target)
        return render_template("console/login.html", next=target)
    role = role_of(request.form.get("token", ""), console_access().tokens)
    if role is None:
        log.warning("console login refused")
        return render_template("console/login.html", next=target, refused=True), 401
    who = log_in(role, console_access().tokens)
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
    session.clear()
    return redirect(url_for("console.login"))
