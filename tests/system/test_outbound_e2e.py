"""Results pushed to apps through the real processes, with one app dead throughout.

simulator -> receiver (gunicorn) -> relay -> Redis -> worker stores the results -> relay
fans the feed out -> Redis `outbound` queue -> the outbound role (the Procfile's line) ->
three receiving apps: two verify every message with the `standardwebhooks` package, the
third accepts connections and never answers. Every stored result must reach both live apps,
each message id once after deduplication, while the dead one only costs its own attempts.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from models.db import make_session_factory
from models.generations import Generation, GenerationStatus
from models.outbound import DeliveryStatus, OutboundDelivery
from rivyahooks.procfile import procfile_roles
from rivyahooks_foundation.settings import Settings
from rivyahooks_simulator.config import Faults, SimConfig
from rivyahooks_simulator.server import Simulator
from tests.support.eventually import eventually
from tests.support.processes import (
    BIN,
    ROOT,
    celery_worker,
    child_env,
    free_port,
    gunicorn,
    relay,
    supervised,
)
from tests.support.receiving_apps import add_app, receiving_app
from tests.system.test_pipeline import pipeline_settings, wait_until_settled

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

GENERATIONS = 40
DEADLINE_SECONDS = 90


@contextmanager
def outbound_role(settings: Settings, log: Path) -> Iterator[None]:
    """Run the Procfile's outbound line through bash, as a platform does."""
    line = procfile_roles(ROOT / "Procfile")["outbound"]
    env = child_env(
        settings.replace(outbound_metrics_port=free_port()),
        PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}",
        OUTBOUND_CONCURRENCY="4",
    )
    with supervised("outbound", ["bash", "-c", line], env, log, stop_timeout=30):
        yield


@contextmanager
def silent_endpoint() -> Iterator[str]:
    """Accept connections and never answer: every attempt waits for the whole timeout."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=64)
    accepted: list[socket.socket] = []
    stopping = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stopping.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            accepted.append(connection)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/hooks"
    finally:
        stopping.set()
        listener.close()
        thread.join(5)
        for connection in accepted:
            connection.close()


def test_every_stored_result_reaches_every_live_app_once_with_one_app_dead(
    postgres_url: str, redis_url: str, postgres_engine: Engine, tmp_path: Path
) -> None:
    config = SimConfig(
        queued_seconds=0.05,
        processing_seconds=0.1,
        failure_ratio=0.2,
        outputs=1,
        output_bytes=4 * 1024,
        delivery_backoff_seconds=0.2,
    )
    sessions = make_session_factory(postgres_engine)
    with (
        Simulator(config=config, faults=Faults(duplicate_ratio=0.2), seed=7).start() as sim,
        receiving_app("whsec_" + "A" * 32) as first,
        receiving_app("whsec_" + "A" * 32) as second,
        silent_endpoint() as dead_url,
    ):
        settings = pipeline_settings(
            postgres_url,
            redis_url,
            sim,
            tmp_path,
            outbound_allowed_hosts=("127.0.0.1",),
            outbound_timeout_seconds=3,
        )
        _, first.secret = add_app(sessions, "first", first.url)
        _, second.secret = add_app(sessions, "second", second.url)
        dead_id, _ = add_app(sessions, "dead", dead_url)
        with (
            gunicorn(settings, log=tmp_path / "web.log") as web_url,
            relay(settings, log=tmp_path / "relay.log"),
            celery_worker(settings, concurrency=2, log=tmp_path / "worker.log"),
            outbound_role(settings, log=tmp_path / "outbound.log"),
        ):
            sim.register_endpoint(web_url + "/webhooks/rivya", secret=settings.webhook_secrets[0])
            task_ids = sim.scenario(GENERATIONS, outputs=1)
            sim.wait_terminal(task_ids, timeout=30)
            sim.wait_deliveries_idle(timeout=DEADLINE_SECONDS)
            wait_until_settled(sessions, GENERATIONS, DEADLINE_SECONDS)
            with sessions() as session:
                final = {
                    g.task_id: g.status
                    for g in session.scalars(select(Generation))
                    if g.status.terminal
                }
            assert len(final) == GENERATIONS

            def both_received_everything() -> bool:
                return all(
                    {m["data"]["task_id"] for m in app.messages.values()} == set(final)
                    for app in (first, second)
                )

            eventually(both_received_everything, DEADLINE_SECONDS, what="every result pushed")

    for app in (first, second):
        assert not app.refused
        by_task = {m["data"]["task_id"]: m for m in app.messages.values()}
        for task_id, status in final.items():
            expected = "result.ready" if status is GenerationStatus.SUCCEEDED else "result.failed"
            assert by_task[task_id]["type"] == expected, task_id
        # One message per result; a repeat (at least once) carries the same id.
        assert len(app.messages) == GENERATIONS
    assert set(first.messages) == set(second.messages)
    with sessions() as session:
        dead = list(
            session.scalars(select(OutboundDelivery).where(OutboundDelivery.app_id == dead_id))
        )
    assert len(dead) == GENERATIONS
    assert all(d.status is not DeliveryStatus.DELIVERED for d in dead)
