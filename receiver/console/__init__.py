"""The operator console at /console/: overview, events, replay, generations, apps.

Registered only when CONSOLE_ADMIN_TOKEN or CONSOLE_READONLY_TOKEN is set; otherwise every
path under /console answers the app's plain 404, the same as a path that never existed.
"""

from __future__ import annotations

import datetime as dt

from flask import Flask
from flask_wtf.csrf import CSRFProtect

# Each module imported here adds its routes, hooks or template filters to the blueprint, which
# must be complete before it is registered; none of them imports this package's own names.
from receiver.console import (  # noqa: F401
    app_actions,
    apps,
    dead_events,
    error_page,
    events,
    files,
    generations,
    guard,
    headers,
    login,
    overview,
    template_filters,
)
from receiver.console.access import (
    ConsoleAccess,
    SessionKey,
    configure_session,
    configured_tokens,
)
from receiver.console.blueprint import bp
from receiver.state import ReceiverState


def install_console(app: Flask) -> None:
    """Register the console on the app if a console token is configured."""
    shared: ReceiverState = app.extensions["rivyahooks"]
    settings = shared.settings
    tokens = configured_tokens(settings)
    if not tokens:
        return
    configure_session(app, settings)
    csrf = CSRFProtect(app)
    app.extensions["console"] = ConsoleAccess(
        tokens=tokens,
        csrf=csrf,
        key=SessionKey(settings.console_session_key, shared.sessions),
        sessions=shared.sessions,
        lifetime=dt.timedelta(hours=settings.console_session_hours),
        trusted_proxies=frozenset(settings.trusted_proxies),
    )
    app.register_blueprint(bp)
