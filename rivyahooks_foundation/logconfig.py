"""Process-wide logging: one JSON object per line (or readable lines for people), no secrets.

Every role routes everything through the root logger's one handler: our own lines, Flask's,
gunicorn's error and access logs (GunicornLogger), Celery's (its `setup_logging` signal),
Python warnings. structlog's ProcessorFormatter renders those stdlib records (structlog
rather than python-json-logger for its contextvars binding and its console renderer, one
processor chain for both formats), so the code keeps plain `logging.getLogger(__name__)`
calls; ids bound with `bound_contextvars` (the receiver
binds `event_id`, a task run binds `event_id`, `task_id` and `celery_task_id`) appear on every
line logged while they are bound.

Nothing here logs a header, a body or a setting's value: secrets cannot reach a line unless
a message puts one there, and tests/system/test_observability_e2e.py greps every line for them.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import structlog
from structlog.contextvars import bind_contextvars, bound_contextvars
from structlog.typing import EventDict, Processor

__all__ = ["bind_contextvars", "bound_contextvars", "configure_logging", "set_log_role"]


def _timestamp(_logger: Any, _name: str, event: EventDict) -> EventDict:
    # UTC with milliseconds, taken from the record when there is one (its real time). The
    # seconds part is formatted once per second: this runs for every line of every delivery.
    record = event.get("_record")
    moment = record.created if record is not None else time.time()
    global _last_second, _last_prefix
    second = int(moment)
    if second != _last_second:
        _last_prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _last_second = second
    event["timestamp"] = f"{_last_prefix}.{int((moment - second) * 1000):03d}Z"
    return event


_last_second = -1
_last_prefix = ""


# gunicorn names its general log `gunicorn.error`: shown as is, "Booting worker" would read
# (and be found by a search) as an error.
_LOGGER_NAMES = {"gunicorn.error": "gunicorn"}


def _plain_logger_name(_logger: Any, _name: str, event: EventDict) -> EventDict:
    name = event.get("logger")
    if name in _LOGGER_NAMES:
        event["logger"] = _LOGGER_NAMES[name]
    return event


# Which Procfile role this process is; Celery's entry serves worker, outbound and beat and
# learns which one only once it starts (set_log_role).
_role = "cli"


def _add_role(_logger: Any, _name: str, event: EventDict) -> EventDict:
    event["role"] = _role
    return event


def set_log_role(role: str) -> None:
    """Name this process's role on every later line."""
    global _role
    _role = role


def configure_logging(level: str = "INFO", fmt: str = "json", role: str = "cli") -> None:
    """Send this process's logs to stderr: `json` one object per line, `console` for people."""
    set_log_role(role)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        _plain_logger_name,
        # `extra={...}` on a stdlib call becomes fields of the line.
        structlog.stdlib.ExtraAdder(),
        _timestamp,
        _add_role,
    ]
    renderer: Processor
    if fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    else:
        # A traceback is one string field, so the line stays one JSON object.
        shared.append(structlog.processors.format_exc_info)
        renderer = structlog.processors.JSONRenderer()
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Lines name their logger, not a file and line: skip the stack walk and the process
    # and thread lookups logging otherwise does for every record (its documented switches).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    # Deprecation and runtime warnings become log lines instead of raw stderr text.
    logging.captureWarnings(True)
    # httpx logs every request at INFO: one line per download and API call would drown
    # the lines that matter, and costs the worker measurable CPU.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
