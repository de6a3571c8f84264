"""gunicorn settings for the web role: `gunicorn -c python:rivyahooks.gunicorn_conf ...`.

Read by gunicorn at start; values come from the environment so one file serves every host.
"""

from __future__ import annotations

import multiprocessing
import os
from typing import TYPE_CHECKING, Any

from rivyahooks_foundation.metrics.directory import use_own_metrics_directory
from rivyahooks_foundation.settings import EXIT_CONFIG, early_value

if TYPE_CHECKING:
    from gunicorn.arbiter import Arbiter

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"  # noqa: S104
# Threads overlap the database and broker round trips of one worker's requests; processes
# use the cores. Receiver requests are short, so a few threads per process suffice.
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2))
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "4"))
# Rivya's delivery timeout is short; a request that takes longer than this has failed anyway.
timeout = 30
graceful_timeout = 20
keepalive = 5
# Bounded request lines and headers: part of not letting a forged request cost much.
limit_request_line = 4094
limit_request_fields = 50
limit_request_field_size = 8190
accesslog = "-" if os.environ.get("WEB_ACCESS_LOG") == "1" else None
errorlog = "-"
# Error and access lines in the service's format (JSON by default, see LOG_FORMAT).
logger_class = "receiver.gunicorn_logger.GunicornLogger"
# Build the app (and its engine) in each worker after the fork, never shared across them.
preload_app = False
# gunicorn 25.1+ opens a control socket at $XDG_RUNTIME_DIR/gunicorn.ctl, else
# ~/.gunicorn/gunicorn.ctl: one path for every gunicorn of the same user, so a second
# instance (another service, a test run, a container sharing HOME) replaces the first one's
# socket, and a read-only HOME logs a warning at every start. Nothing here uses gunicornc.
control_socket_disable = True


def on_starting(server: Arbiter) -> None:
    """Check the settings in the master, before any worker forks.

    Without this, a bad setting surfaces as a traceback in every worker, each respawned
    until gunicorn gives up. Here it is one line naming the variable (never a secret's value)
    and exit status 2, the configuration-error status of every rivya-hooks command.
    """
    from receiver.app import check_settings
    from rivyahooks_foundation.settings import Settings, SettingsError

    try:
        check_settings(Settings.from_env())
    except SettingsError as exc:
        server.log.error("configuration error: %s", exc)
        raise SystemExit(EXIT_CONFIG) from None


# --- metrics: every worker writes its own files, /metrics adds them up ----------------------
# Chosen here, at config load, because prometheus-client fixes its mode when first imported
# and the app's modules (which import it) may be loaded by the master's start-up hooks.
metrics_directory = use_own_metrics_directory("web", early_value("metrics_dir"))


def child_exit(_server: Any, worker: Any) -> None:
    """Drop a dead worker's live gauges (its counters stay: they still count)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, str(metrics_directory))  # type: ignore[no-untyped-call]
