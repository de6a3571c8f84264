"""The console's blueprint: its URL prefix, templates and static files.

Each page module adds its routes to it; install_console imports them all before
registering it.
"""

from __future__ import annotations

from flask import Blueprint

from receiver.console.access import CONSOLE_PATH

bp = Blueprint(
    "console",
    __name__,
    url_prefix=CONSOLE_PATH,
    template_folder="templates",
    static_folder="static",
)
