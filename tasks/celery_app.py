"""The worker's Celery app, made by a factory from explicit settings."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import worker_process_init

from rivyahooks_foundation import faultpoints
from rivyahooks_foundation.settings import Settings
from tasks import instrumentation, names
from tasks.broker import celery_config
from tasks.runtime import Runtime


class RivyaCelery(Celery):  # type: ignore[misc]
    """A Celery app that carries this process's runtime for the tasks to use."""

    runtime: Runtime


def create_celery(settings: Settings) -> RivyaCelery:
    """Build the Celery app for worker and beat processes.

    Raises SettingsError when the time limits do not fit inside the visibility timeout.
    """
    runtime = Runtime(settings)
    limits = runtime.limits
    faultpoints.arm(settings.fault_points_dir)
    app = RivyaCelery("rivyahooks", set_as_current=True)
    app.config_from_object(celery_config(settings))
    app.conf.update(
        # One message at a time per process: a long download must not hold others hostage.
        worker_prefetch_multiplier=1,
        # Acknowledge after the task ran and requeue if the worker process died: safe only
        # because every task here is idempotent (each says so where it is declared).
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_hijack_root_logger=False,
        # An attempt past its soft limit gets SoftTimeLimitExceeded (recorded as a failure);
        # past its hard limit it is killed, and its lease lapses soon after. Both end before
        # the broker's visibility timeout (Runtime checks it).
        task_annotations={
            names.PROCESS_EVENT: {"soft_time_limit": limits.soft, "time_limit": limits.hard}
        },
        beat_schedule={
            "sweep-events": {
                "task": names.SWEEP_EVENTS,
                "schedule": float(settings.sweep_interval_seconds),
            },
            "reconcile": {
                "task": names.RECONCILE,
                "schedule": float(settings.reconcile_interval_seconds),
            },
            "purge": {
                "task": names.PURGE,
                "schedule": float(settings.retention_interval_seconds),
            },
        },
    )
    app.runtime = runtime

    def reset_after_fork(**_: Any) -> None:
        app.runtime.after_fork()

    # weak=False: the closure has no other reference and would be collected at once.
    worker_process_init.connect(reset_after_fork, weak=False)
    instrumentation.connect(app)
    # Importing registers the tasks with this app (shared_task binds to the current app).
    import tasks.registry  # noqa: F401

    return app
