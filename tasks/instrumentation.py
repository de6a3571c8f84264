"""What every Celery process reports: its logs, its metrics server, each task's outcome.

Connected by the app factory. Timing and outcomes come from Celery's task signals, so the
tasks themselves stay free of bookkeeping; ids are bound for the task run's log lines.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from contextlib import ExitStack
from typing import Any

from celery import Celery, concurrency
from celery.apps import worker as celery_worker_app
from celery.concurrency import prefork
from celery.signals import (
    beat_init,
    setup_logging,
    task_postrun,
    task_prerun,
    worker_init,
    worker_process_init,
)
from structlog.contextvars import clear_contextvars

from rivyahooks_foundation.logconfig import bind_contextvars, set_log_role
from rivyahooks_foundation.metrics.exposition import serve
from rivyahooks_foundation.metrics.worker import TASK_DURATION, TASKS
from rivyahooks_foundation.tracing import configure_tracing, continued
from tasks import names
from tasks.database_gauges import DatabaseGauges

OUTCOMES = {"SUCCESS": "succeeded", "RETRY": "retried", "FAILURE": "failed"}
_started: dict[str, float] = {}
_spans: dict[str, ExitStack] = {}


def connect(app: Celery) -> None:
    """Connect this process's signal handlers for `app`."""

    def keep_our_logging(**_: Any) -> None:
        # Connected at all, this tells Celery not to configure logging: the entry point did.
        return

    def on_child_start(**_: Any) -> None:
        # Each prefork child exports its own spans (the exporter's thread does not fork).
        configure_tracing("worker", app.runtime.settings.otel_exporter_otlp_endpoint)

    def on_worker_init(sender: Any = None, **_: Any) -> None:
        # The worker and outbound roles are the same entry point; the queues tell them apart.
        role = worker_role(sender.app.amqp.queues.consume_from)
        set_log_role(role)
        settings = app.runtime.settings
        if not _forks(sender.pool_cls):
            # Tasks run in this very process (a solo or thread pool): no child starts to do it.
            configure_tracing(role, settings.otel_exporter_otlp_endpoint)
        port = (
            settings.outbound_metrics_port if role == "outbound" else settings.worker_metrics_port
        )
        serve(role, settings.metrics_address, port)

    def on_beat_init(**_: Any) -> None:
        set_log_role("beat")
        settings = app.runtime.settings
        configure_tracing("beat", settings.otel_exporter_otlp_endpoint)
        gauges = DatabaseGauges(app.runtime.sessions, settings.metrics_database_interval_seconds)
        serve("beat", settings.metrics_address, settings.beat_metrics_port, gauges)

    # weak=False: the closures have no other reference and would be collected at once;
    # dispatch_uid: a process that builds the app twice still connects each once.
    setup_logging.connect(keep_our_logging, weak=False, dispatch_uid="rivyahooks.setup_logging")
    worker_init.connect(on_worker_init, weak=False, dispatch_uid="rivyahooks.worker_init")
    worker_process_init.connect(
        on_child_start, weak=False, dispatch_uid="rivyahooks.worker_process_init"
    )
    beat_init.connect(on_beat_init, weak=False, dispatch_uid="rivyahooks.beat_init")
    task_prerun.connect(_before_task, weak=False)
    task_postrun.connect(_after_task, weak=False)
    celery_worker_app.safe_say = _say_as_log_line


def worker_role(queues: Iterable[str]) -> str:
    """Return the role of a Celery worker consuming `queues`: outbound if only its queue."""
    return "outbound" if set(queues) == {names.OUTBOUND_QUEUE} else "worker"


def _forks(pool: Any) -> bool:
    """Return whether the worker's pool (`--pool`: a name or a class) runs tasks in children."""
    return issubclass(concurrency.get_implementation(pool), prefork.TaskPool)


def _say_as_log_line(message: str, _stream: Any = None) -> None:
    """Write what Celery's signal handlers print (shutdown notices) as one of our log lines.

    Celery prints these from signal handlers, where logging could deadlock on a lock the
    interrupted code holds; formatting takes no lock, and one os.write is what Celery does.
    """
    record = logging.LogRecord(
        "celery.apps.worker", logging.INFO, __file__, 0, message.strip(), None, None
    )
    handlers = logging.getLogger().handlers
    line = handlers[0].format(record) if handlers else message.strip()
    os.write(2, (line + "\n").encode())


def _before_task(task_id: str, task: Any, args: Any = (), **_: Any) -> None:
    _started[task_id] = time.perf_counter()
    clear_contextvars()
    bind_contextvars(celery_task_id=task_id)
    event_id = args[0] if task.name == names.PROCESS_EVENT and args else None
    if event_id is not None:
        bind_contextvars(event_id=event_id)
    # The task's span continues the trace of whoever published it (the receiver).
    span = ExitStack()
    headers = {key: getattr(task.request, key, None) for key in ("traceparent", "tracestate")}
    span.enter_context(continued(f"task {task.name}", headers, event_id=event_id))
    _spans[task_id] = span


def _after_task(task_id: str, task: Any, state: str | None = None, **_: Any) -> None:
    started = _started.pop(task_id, None)
    if started is not None:
        TASK_DURATION.labels(task.name).observe(time.perf_counter() - started)
    TASKS.labels(task.name, OUTCOMES.get(state or "", "failed")).inc()
    span = _spans.pop(task_id, None)
    if span is not None:
        span.close()
    clear_contextvars()
