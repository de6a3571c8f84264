"""The reconciler against the simulator over real HTTP: nothing missed, cost bounded."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from models.base import utcnow
from models.events import UNFINISHED_STATUSES, EventSource, EventStatus, WebhookEvent
from models.generations import Generation, GenerationOutput, GenerationStatus
from models.reconcile import ReconcileState
from rivyahooks.rivya import contract
from rivyahooks.rivya.client import RivyaClient
from rivyahooks.rivya.simulator.config import Faults, SimConfig
from rivyahooks.rivya.simulator.server import Simulator
from rivyahooks.settings import Settings
from tasks.events import send_process_event
from tasks.reconcile import STATE_NAME, ReconcileBusy, reconcile
from tests.conftest import SECRET
from tests.support.processes import celery_worker, gunicorn


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    config = SimConfig(
        queued_seconds=0.05,
        processing_seconds=0.1,
        outputs=1,
        output_bytes=4096,
        failure_ratio=0.2,
        delivery_backoff_seconds=0.1,
        delivery_max_attempts=3,
    )
    with Simulator(config=config, faults=Faults(), seed=11).start() as sim:
        yield sim


@pytest.fixture
def rec_settings(settings: Settings, simulator: Simulator) -> Settings:
    return settings.replace(
        rivya_api_base=simulator.url,
        rivya_api_key=simulator.api_key,
        download_allowed_hosts=("127.0.0.1",),
        reconcile_poll_after_seconds=0,
        sweep_received_after_seconds=2,
    )


def count_unfinished(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return int(
            session.scalar(select(func.count()).where(WebhookEvent.status.in_(UNFINISHED_STATUSES)))
            or 0
        )


def wait_for(condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.mark.slow
def test_one_reconcile_recovers_dropped_deliveries_and_a_second_finds_nothing(
    simulator: Simulator, rec_settings: Settings, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    from tasks.celery_app import create_celery

    celery = create_celery(rec_settings)
    with (
        gunicorn(rec_settings, log=tmp_path / "web.log") as web,
        celery_worker(rec_settings, concurrency=2, log=tmp_path / "worker.log"),
    ):
        simulator.register_endpoint(web + "/webhooks/rivya", secret=SECRET)
        simulator.set_faults(drop_ratio=0.3)
        task_ids = simulator.scenario(40)
        simulator.wait_terminal(task_ids, timeout=30)
        simulator.wait_deliveries_idle(timeout=30)
        wait_for(lambda: count_unfinished(sessions) == 0, 60, "delivered events to settle")
        with sessions() as session:
            delivered = session.scalar(select(func.count()).select_from(WebhookEvent))
        dropped = simulator.summary()["deliveries"]["dropped"]
        assert dropped > 0, "the fault did not bite; the test would prove nothing"
        assert delivered == len(task_ids) - dropped

        with RivyaClient.from_settings(rec_settings) as client:
            first = reconcile(
                sessions, rec_settings, client, lambda e: send_process_event(celery, e)
            )
            assert first.events_missing == dropped
            assert first.enqueued == dropped
            wait_for(lambda: count_unfinished(sessions) == 0, 60, "reconciled events to settle")

            second = reconcile(
                sessions, rec_settings, client, lambda e: send_process_event(celery, e)
            )
        assert second.events_missing == 0
        assert second.enqueued == 0
        assert second.generations_recovered == 0

    with sessions() as session:
        generations = {g.task_id: g for g in session.scalars(select(Generation))}
        stored = set(session.scalars(select(GenerationOutput.task_id)))
        reconciled = session.scalar(
            select(func.count()).where(WebhookEvent.source == EventSource.RECONCILE)
        )
    assert reconciled == dropped
    for task_id in task_ids:
        truth = simulator.generation(task_id)
        assert generations[task_id].status.value == truth["status"]
        if truth["status"] == "succeeded":
            assert task_id in stored
        else:
            # A failed generation may come with a null error; we record "unknown" then.
            expected = (truth["error"] or {}).get("code") or "unknown"
            assert generations[task_id].error_code == expected


def test_cost_grows_with_what_is_new_not_with_history(
    simulator: Simulator, rec_settings: Settings, sessions: sessionmaker[Session]
) -> None:
    simulator.seed_events(
        20_000, older_than_seconds=3600, spacing_ms=100, delivery_status="delivered"
    )
    with sessions.begin() as session:
        # As left by an earlier run that had caught up with everything up to 30 minutes ago.
        session.add(ReconcileState(name=STATE_NAME, checkpoint=utcnow() - dt.timedelta(minutes=30)))
    new = simulator.scenario(50)
    simulator.wait_terminal(new)
    simulator.reset_requests()
    enqueued: list[str] = []

    with RivyaClient.from_settings(rec_settings) as client:
        summary = reconcile(sessions, rec_settings, client, enqueued.append)

    pages = simulator.requests(contract.API_PREFIX + contract.EVENTS_LOG_PATH)
    assert 1 <= len(pages) <= 3
    assert summary.pages_read == len(pages)
    assert summary.events_missing == 50
    assert sorted(enqueued) == sorted(
        e.event_id for e in _events(sessions) if e.source is EventSource.RECONCILE
    )
    with sessions() as session:
        state = session.get(ReconcileState, STATE_NAME)
        assert state is not None
        assert state.checkpoint is not None
        assert state.checkpoint > utcnow() - dt.timedelta(minutes=1)
        assert state.running_since is None


def _events(sessions: sessionmaker[Session]) -> list[WebhookEvent]:
    with sessions() as session:
        return list(session.scalars(select(WebhookEvent)))


def test_dry_run_counts_but_stores_nothing(
    simulator: Simulator, rec_settings: Settings, sessions: sessionmaker[Session]
) -> None:
    simulator.wait_terminal(simulator.scenario(5))
    enqueued: list[str] = []
    with RivyaClient.from_settings(rec_settings) as client:
        summary = reconcile(sessions, rec_settings, client, enqueued.append, dry_run=True)
    assert summary.events_missing == 5
    assert enqueued == []
    assert _events(sessions) == []
    with sessions() as session:
        state = session.get(ReconcileState, STATE_NAME)
        assert state is not None
        assert state.checkpoint is None


def test_only_one_reconcile_runs_at_a_time(
    simulator: Simulator, rec_settings: Settings, sessions: sessionmaker[Session]
) -> None:
    simulator.wait_terminal(simulator.scenario(3))
    simulator.set_faults(slow_ratio=1.0, slow_seconds=1.0)
    outcomes: list[str] = []

    def run() -> None:
        with RivyaClient.from_settings(rec_settings) as client:
            try:
                reconcile(sessions, rec_settings, client, lambda _e: None)
                outcomes.append("ran")
            except ReconcileBusy:
                outcomes.append("busy")

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == ["busy", "busy", "ran"]


def test_unfinished_generations_are_polled_and_recovered(
    simulator: Simulator, rec_settings: Settings, sessions: sessionmaker[Session]
) -> None:
    (task_id,) = simulator.scenario(1, outcome="succeeded")
    simulator.wait_terminal([task_id])
    with sessions.begin() as session:
        # Known here (e.g. submitted by us) but no event ever seen, and none in the log
        # window: the checkpoint is past its event.
        session.add(Generation(task_id=task_id, status=GenerationStatus.PROCESSING))
        session.add(ReconcileState(name=STATE_NAME, checkpoint=utcnow() + dt.timedelta(hours=1)))
    enqueued: list[str] = []
    with RivyaClient.from_settings(rec_settings.replace(reconcile_overlap_seconds=0)) as client:
        summary = reconcile(
            sessions, rec_settings.replace(reconcile_overlap_seconds=0), client, enqueued.append
        )
    assert summary.generations_polled == 1
    assert summary.generations_recovered == 1
    (event,) = _events(sessions)
    assert event.task_id == task_id
    assert event.source is EventSource.RECONCILE
    assert event.status is EventStatus.ENQUEUED
    assert enqueued == [event.event_id]


def test_a_checkpoint_older_than_retention_warns(
    simulator: Simulator, rec_settings: Settings, sessions: sessionmaker[Session]
) -> None:
    with RivyaClient.from_settings(rec_settings) as client:
        summary = reconcile(
            sessions,
            rec_settings,
            client,
            lambda _e: None,
            since=utcnow() - dt.timedelta(days=contract.EVENTS_RETENTION_DAYS + 1),
        )
    assert any("retention" in w for w in summary.warnings)
