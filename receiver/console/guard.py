"""The check every console request passes: a logged-in operator, and a CSRF token on a POST.

The login page and static files are the only ones open without a session.
"""

from __future__ import annotations

from flask import Response, abort, g, redirect, request, url_for
from flask.typing import ResponseReturnValue

from receiver.console.access import Operator, console_access, current_operator
from receiver.console.blueprint import bp

PUBLIC_ENDPOINTS = frozenset({"console.login", "console.static"})


@bp.before_request
def guard() -> ResponseReturnValue | None:
    """Let in only a logged-in operator (the login page and static files aside); check CSRF."""
    g.operator = current_operator(console_access())
    if request.endpoint not in PUBLIC_ENDPOINTS and g.operator is None:
        if request.method != "GET":
            abort(403)
        if request.headers.get("HX-Request"):
            # htmx swaps what it gets; tell it to load the login page instead.
            return Response(status=401, headers={"HX-Redirect": url_for("console.login")})
        return redirect(url_for("console.login", next=request.full_path.rstrip("?")))
    if request.method == "POST":
        console_access().csrf.protect()
    return None


def operator() -> Operator:
    """Return the operator the guard let in."""
    found: Operator = g.operator
    return found
