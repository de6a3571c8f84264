"""The console's answer to an HTTP error: an HTML page in its own layout, not the app's JSON."""

from __future__ import annotations

from flask import render_template
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from receiver.console.blueprint import bp


@bp.errorhandler(HTTPException)
def error_page(error: HTTPException) -> ResponseReturnValue:
    """Render the error's code and description."""
    code = error.code or 500
    return render_template("console/error.html", code=code, description=error.description), code
