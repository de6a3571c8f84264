"""The Procfile's outbound line consumes the outbound queue; the worker's line never does.

Both lines run through bash as a platform runs them, on the suite's PostgreSQL and a Redis
database of this test's own. The deliveries published have ids no row has, so the outbound
role claims none of them: it says in its log that it dropped each one, and counts the task
runs on its own metrics port, beside the worker's on the same host.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest
import redis

from rivyahooks.procfile import procfile_roles
from rivyahooks_foundation.settings import Settings
from tasks import names
from tasks.publisher import Publisher
from tests.support.eventually import eventually
from tests.support.metrics import samples, value
from tests.support.processes import (
    BIN,
    ROOT,
    child_env,
    free_port,
    own_redis_database,
    supervised,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

REDIS_DB = 6
DELIVERY_IDS = [990001, 990002, 990003]
STARTUP_SECONDS = 90


def records(log: Path) -> list[dict[str, object]]:
    """Return the role's log records so far (a line still being written is left out)."""
    found = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            found.append(record)
    return found


def ready(log: Path, node: str) -> bool:
    """Return whether the Celery worker of `log` said its node (`celery@`...) is ready."""
    return any(
        str(r["event"]).startswith(node) and str(r["event"]).endswith(" ready.")
        for r in records(log)
    )


def task_runs(port: int, task: str) -> float:
    """Return the successful runs of `task` the metrics on `port` show; 0 while not served."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.TransportError:
        return 0
    return value(samples(text), "rivyahooks_tasks_total", task=task, outcome="succeeded")


def test_only_the_outbound_role_consumes_outbound_deliveries(
    postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    settings = Settings(
        database_url=postgres_url,
        broker_url=own_redis_database(redis_url, REDIS_DB),
        rivya_api_key="rvya_sk_outbound_role_test",
        # Ports of their own: the defaults may be held by another run on this machine.
        worker_metrics_port=free_port(),
        outbound_metrics_port=free_port(),
    )
    env = child_env(
        settings,
        PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}",
        WORKER_CONCURRENCY="1",
        OUTBOUND_CONCURRENCY="2",
    )
    lines = procfile_roles(ROOT / "Procfile")
    broker = redis.Redis.from_url(settings.broker_url)
    publisher = Publisher(settings)
    worker_log, outbound_log = tmp_path / "worker.log", tmp_path / "outbound.log"
    try:
        with supervised("worker", ["bash", "-c", lines["worker"]], env, worker_log):
            eventually(lambda: ready(worker_log, "celery@"), STARTUP_SECONDS, "the worker ready")
            publisher.publish_deliveries(DELIVERY_IDS)
            # Published after the deliveries: once the worker ran it, it had the chance to
            # take them too, and left them in the queue.
            publisher.publish([("evt_outbound_role_probe", None)])
            eventually(
                lambda: task_runs(settings.worker_metrics_port, names.PROCESS_EVENT),
                60,
                "the worker running the events.process message",
            )
            assert broker.llen(names.OUTBOUND_QUEUE) == len(DELIVERY_IDS)

            with supervised("outbound", ["bash", "-c", lines["outbound"]], env, outbound_log):
                eventually(
                    lambda: (
                        task_runs(settings.outbound_metrics_port, names.DELIVER_OUTBOUND)
                        == len(DELIVERY_IDS)
                    ),
                    STARTUP_SECONDS,
                    "the outbound role running every delivery",
                )
                assert broker.llen(names.OUTBOUND_QUEUE) == 0
                logged = records(outbound_log)
                # From the metrics server on (warnings of Celery's start come before), every
                # line names the role.
                served = f"metrics served on http://127.0.0.1:{settings.outbound_metrics_port}"
                since = next(i for i, r in enumerate(logged) if str(r["event"]).startswith(served))
                assert {r["role"] for r in logged[since:]} == {"outbound"}
                events = [str(r["event"]) for r in logged[since:]]
                assert ready(outbound_log, "outbound@")
                for delivery_id in DELIVERY_IDS:
                    dropped = f"outbound delivery {delivery_id} is no longer due"
                    assert any(e.startswith(dropped) for e in events), delivery_id

                assert task_runs(settings.worker_metrics_port, names.DELIVER_OUTBOUND) == 0
                assert not any(
                    names.DELIVER_OUTBOUND in str(r["event"]) for r in records(worker_log)
                )
    finally:
        publisher.close()
        broker.close()
