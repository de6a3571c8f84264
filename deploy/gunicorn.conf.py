"""gunicorn settings for the web role (see the Procfile `web` line).

Read by gunicorn at start; values come from the environment so one file serves every host.
"""

import multiprocessing
import os
from typing import Any

from rivyahooks.metrics.directory import use_own_metrics_directory
from rivyahooks.settings import early_value

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


# --- metrics: every worker writes its own files, /metrics adds them up ----------------------
# Chosen here, at config load, because prometheus-client fixes its mode when first imported
# and the app's modules (which import it) may be loaded by the master's start-up hooks.
metrics_directory = use_own_metrics_directory("web", early_value("metrics_dir"))


def child_exit(_server: Any, worker: Any) -> None:
    """Drop a dead worker's live gauges (its counters stay: they still count)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, str(metrics_directory))
