"""What the console's templates use beyond Jinja's own: filters and the logged-in operator."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import g

from receiver.console.blueprint import bp
from receiver.console.redact import redact_text


@bp.app_template_filter("redact")
def redact_filter(value: str | None) -> str:
    """Show text without URL queries or keys, cut to a bounded length."""
    return redact_text(value)


@bp.app_template_filter("when")
def when_filter(value: dt.datetime | None) -> str:
    """Show a time in UTC to the second."""
    return "" if value is None else value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@bp.app_template_filter("age")
def age_filter(seconds: float | None) -> str:
    """Show a duration in the largest unit that keeps it readable."""
    if seconds is None:
        return "-"
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} days"


@bp.app_context_processor
def console_globals() -> dict[str, Any]:
    """Give every template the logged-in operator (None on the login page)."""
    return {"operator": g.get("operator")}
