"""Which role a Celery worker is, from what it consumes and how it runs its tasks."""

from __future__ import annotations

import pytest
from celery.concurrency import prefork, thread

from tasks import names
from tasks.instrumentation import _forks, worker_role


@pytest.mark.parametrize(
    ("queues", "role"),
    [
        ({names.OUTBOUND_QUEUE}, "outbound"),
        ({"celery"}, "worker"),
        # Both at once is a worker: its port and log name stay the worker's.
        ({"celery", names.OUTBOUND_QUEUE}, "worker"),
    ],
)
def test_the_queues_name_the_role(queues: set[str], role: str) -> None:
    assert worker_role(queues) == role


@pytest.mark.parametrize(
    ("pool", "forks"),
    [
        ("prefork", True),
        ("processes", True),
        (prefork.TaskPool, True),
        ("threads", False),
        ("solo", False),
        (thread.TaskPool, False),
    ],
)
def test_only_prefork_runs_tasks_in_children(pool: object, forks: bool) -> None:
    assert _forks(pool) is forks
