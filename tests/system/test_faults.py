"""The fault suite: an arbitrary exception, or SIGKILL, at every step of an event's life.

Everything is real: the simulator delivers over HTTP to the receiver under gunicorn, the
relay (restarted when it dies, as a platform would) publishes to Redis, a prefork Celery
worker with embedded beat processes and sweeps, all on PostgreSQL. Timers are short: an
attempt may run 3 s, so a killed worker's lease lapses within seconds.

For each step boundary and each action, one generation goes through while the fault point
fires once (a test first waits for proof that it fired). Afterwards, with no operator
doing anything, `rivya-hooks events audit` passes and every output of the generation is
stored exactly once, its bytes matching the simulator's sha256.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models.db import make_engine, make_session_factory
from models.events import TERMINAL_STATUSES, EventSource, WebhookEvent
from models.generations import Generation, GenerationOutput
from models.migrate import upgrade
from rivyahooks_foundation.settings import Settings
from rivyahooks_simulator.config import Faults, SimConfig
from rivyahooks_simulator.content import result_bytes_sha256
from rivyahooks_simulator.server import Simulator
from storage.files import PARTIAL_DIR
from tests.conftest import SECRET
from tests.support import services
from tests.support.eventually import eventually
from tests.support.processes import (
    BIN,
    ROOT,
    celery_worker,
    child_env,
    gunicorn,
    own_redis_database,
    relay,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

REDIS_DB = 11
OUTPUTS = 2
OUTPUT_BYTES = 16 * 1024
SETTLE_SECONDS = 60
ACTIONS = ("raise", "kill")
# The boundaries a webhook delivery crosses, in order (see rivyahooks_foundation/faultpoints.py).
DELIVERY_POINTS = (
    "receiver.verified",
    "receiver.committed",
    "relay.claimed",
    "relay.published",
    "relay.marked",
    "worker.claimed",
    "worker.fetched",
    "worker.applied",
    "worker.downloaded",
    "worker.stored",
    "worker.recorded",
    "worker.finished",
)


@dataclass
class Stack:
    settings: Settings
    sessions: sessionmaker[Session]
    simulator: Simulator
    faults: Path

    def arm(self, point: str, action: str) -> None:
        (self.faults / point).write_text(action)

    def fired(self, point: str) -> bool:
        return any(self.faults.glob(f"{point}.fired.*"))

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run a `rivya-hooks` command as an operator (or a platform) would."""
        return subprocess.run(
            [str(BIN / "rivya-hooks"), *args],
            cwd=ROOT,
            env=child_env(self.settings),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    """A database of the suite's own: the audit after each case covers every case's events."""
    with services.new_postgres_database("rivyahooks_faults") as url:
        upgrade(url)
        yield url


@pytest.fixture(scope="module")
def stack(database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    services.require("Redis", services.REDIS_URL)
    work = tmp_path_factory.mktemp("faults")
    faults = work / "points"
    faults.mkdir()
    logs = work / "logs"
    logs.mkdir()
    config = SimConfig(
        queued_seconds=0.05,
        processing_seconds=0.05,
        failure_ratio=0,
        outputs=OUTPUTS,
        output_bytes=OUTPUT_BYTES,
        delivery_backoff_seconds=0.2,
        delivery_max_attempts=8,
    )
    engine = make_engine(database)
    with ExitStack() as stack, Simulator(config=config, faults=Faults(), seed=2026).start() as sim:
        settings = Settings(
            database_url=database,
            broker_url=own_redis_database(f"{services.REDIS_URL}/0", REDIS_DB),
            webhook_secrets=(SECRET,),
            storage_url=f"file://{work / 'results'}",
            rivya_api_base=sim.url,
            rivya_api_key=sim.api_key,
            download_allowed_hosts=("127.0.0.1",),
            process_time_limit_seconds=3,
            task_visibility_timeout_seconds=10,
            process_retry_base_seconds=0.2,
            sweep_interval_seconds=1,
            relay_poll_seconds=0.5,
            reconcile_interval_seconds=3600,
            reconcile_poll_after_seconds=3600,
            fault_points_dir=str(faults),
        )
        web = stack.enter_context(gunicorn(settings, workers=2, threads=2, log=logs / "web.log"))
        stack.enter_context(relay(settings, log=logs / "relay.log"))
        stack.enter_context(
            celery_worker(settings, concurrency=2, beat=True, log=logs / "worker.log")
        )
        sim.register_endpoint(web + "/webhooks/rivya", secret=SECRET)
        yield Stack(settings, make_session_factory(engine), sim, faults)
    engine.dispose()


def settle(stack: Stack, task_id: str) -> None:
    """Wait until the generation's events are finished and its outputs all stored."""

    def settled() -> bool:
        with stack.sessions() as session:
            statuses = list(
                session.scalars(select(WebhookEvent.status).where(WebhookEvent.task_id == task_id))
            )
            stored = session.scalars(
                select(GenerationOutput.index).where(GenerationOutput.task_id == task_id)
            ).all()
        return bool(statuses) and set(statuses) <= TERMINAL_STATUSES and len(stored) == OUTPUTS

    eventually(settled, SETTLE_SECONDS, interval=0.2, what=f"{task_id} to settle")


def assert_no_event_stranded(stack: Stack) -> None:
    audit = stack.run("events", "audit", "--json")
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert json.loads(audit.stdout)["ok"] is True


def assert_stored_exactly_once(stack: Stack, task_id: str) -> None:
    root = stack.settings.storage_root()
    with stack.sessions() as session:
        generation = session.scalars(select(Generation).where(Generation.task_id == task_id)).one()
        outputs = session.scalars(
            select(GenerationOutput)
            .where(GenerationOutput.task_id == task_id)
            .order_by(GenerationOutput.index)
        ).all()
    assert generation.status.value == "succeeded"
    assert generation.results_stored_at is not None
    assert [o.index for o in outputs] == list(range(OUTPUTS))
    for output in outputs:
        expected = result_bytes_sha256(task_id, output.index, OUTPUT_BYTES)
        assert output.sha256 == expected
        assert hashlib.sha256((root / output.storage_key).read_bytes()).hexdigest() == expected
    # No second copy under another name, and no partial file left once the sweeper ran.
    files = sorted(p.relative_to(root).as_posix() for p in (root / task_id).iterdir())
    assert files == sorted(o.storage_key for o in outputs)
    eventually(
        lambda: not list((root / PARTIAL_DIR).glob(f"{task_id}.*")),
        SETTLE_SECONDS,
        what="partial files of dead writers to be removed",
    )


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("point", DELIVERY_POINTS)
def test_a_fault_on_the_way_from_delivery_to_stored_file(
    stack: Stack, point: str, action: str
) -> None:
    stack.arm(point, action)
    (task_id,) = stack.simulator.scenario(1, outcome="succeeded")

    eventually(lambda: stack.fired(point), SETTLE_SECONDS, what=f"{point} to fire")
    settle(stack, task_id)

    assert_no_event_stranded(stack)
    assert_stored_exactly_once(stack, task_id)


@pytest.mark.parametrize("action", ACTIONS)
def test_a_fault_in_the_sweeper(stack: Stack, action: str) -> None:
    # A worker dies mid-attempt; the sweeper, taking the event back, meets the fault.
    stack.arm("worker.fetched", "kill")
    stack.arm("sweeper.moved", action)
    (task_id,) = stack.simulator.scenario(1, outcome="succeeded")

    eventually(lambda: stack.fired("sweeper.moved"), SETTLE_SECONDS, what="the sweeper's fault")
    settle(stack, task_id)

    assert_no_event_stranded(stack)
    assert_stored_exactly_once(stack, task_id)


@pytest.mark.parametrize("action", ACTIONS)
def test_a_fault_while_the_reconciler_stores_a_page(stack: Stack, action: str) -> None:
    stack.simulator.set_faults(drop_ratio=1.0)
    (task_id,) = stack.simulator.scenario(1, outcome="succeeded")
    stack.simulator.wait_terminal([task_id])
    stack.simulator.wait_deliveries_idle(timeout=SETTLE_SECONDS)
    stack.simulator.set_faults(drop_ratio=0.0)
    stack.arm("reconcile.page_stored", action)

    failed = stack.run("reconcile", "--json")
    assert failed.returncode == (-9 if action == "kill" else 1), failed.stderr
    assert stack.fired("reconcile.page_stored")
    # The next run (the next beat tick, or an operator) is not locked out and catches up.
    again = stack.run("reconcile", "--json")
    assert again.returncode == 0, again.stderr
    settle(stack, task_id)

    with stack.sessions() as session:
        sources = session.scalars(
            select(WebhookEvent.source).where(WebhookEvent.task_id == task_id)
        ).all()
    assert sources == [EventSource.RECONCILE]
    assert_no_event_stranded(stack)
    assert_stored_exactly_once(stack, task_id)
