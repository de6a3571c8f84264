"""Processing one event against the simulator over real HTTP, by calling the plain function."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models.events import EventSource, EventStatus, WebhookEvent
from models.generations import Generation, GenerationOutput, GenerationStatus
from models.inbox import insert_event
from rivyahooks.rivya import contract
from rivyahooks.rivya.simulator.config import Faults, SimConfig
from rivyahooks.rivya.simulator.content import result_bytes_sha256
from rivyahooks.rivya.simulator.server import Simulator
from rivyahooks.settings import Settings
from storage.files import FileStorage
from tasks.processing import RetryLater, process_event

OUTPUT_BYTES = 100_000


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    config = SimConfig(
        queued_seconds=0,
        processing_seconds=0,
        outputs=2,
        output_bytes=OUTPUT_BYTES,
        failure_ratio=0,
    )
    with Simulator(config=config, faults=Faults(), seed=7).start() as sim:
        yield sim


@pytest.fixture
def proc_settings(settings: Settings, simulator: Simulator) -> Settings:
    return settings.replace(
        rivya_api_base=simulator.url,
        rivya_api_key=simulator.api_key,
        download_allowed_hosts=("127.0.0.1",),
        rivya_max_attempts=2,
    )


def store_event(sessions: sessionmaker[Session], task_id: str, event_id: str) -> str:
    with sessions.begin() as session:
        insert_event(
            session,
            event_id=event_id,
            body=b"{}",
            source=EventSource.WEBHOOK,
            event_type=contract.EVENT_GENERATION_SUCCEEDED,
            task_id=task_id,
        )
    return event_id


def event(sessions: sessionmaker[Session], event_id: str) -> WebhookEvent:
    with sessions() as session:
        return session.scalars(select(WebhookEvent).where(WebhookEvent.event_id == event_id)).one()


def outputs(sessions: sessionmaker[Session], task_id: str) -> list[GenerationOutput]:
    with sessions() as session:
        return list(
            session.scalars(
                select(GenerationOutput)
                .where(GenerationOutput.task_id == task_id)
                .order_by(GenerationOutput.index)
            )
        )


def test_succeeded_generation_stores_every_output_with_its_sha256(
    simulator: Simulator, proc_settings: Settings, sessions: sessionmaker[Session]
) -> None:
    (task_id,) = simulator.scenario(1, outcome="succeeded")
    simulator.wait_terminal([task_id])
    store_event(sessions, task_id, "evt_1")

    outcome = process_event(sessions, proc_settings, "evt_1")

    assert outcome is not None
    assert outcome.status is EventStatus.PROCESSED
    stored = outputs(sessions, task_id)
    assert [o.index for o in stored] == [0, 1]
    storage = FileStorage(proc_settings.storage_root())
    for output in stored:
        assert output.sha256 == result_bytes_sha256(task_id, output.index, OUTPUT_BYTES)
        assert output.size_bytes == OUTPUT_BYTES
        assert storage.size(output.storage_key) == OUTPUT_BYTES
    assert event(sessions, "evt_1").status is EventStatus.PROCESSED
    with sessions() as session:
        generation = session.scalars(select(Generation)).one()
        assert generation.status is GenerationStatus.SUCCEEDED
        assert generation.results_stored_at is not None


def test_a_second_event_for_the_same_generation_downloads_nothing(
    simulator: Simulator, proc_settings: Settings, sessions: sessionmaker[Session]
) -> None:
    (task_id,) = simulator.scenario(1, outcome="succeeded")
    simulator.wait_terminal([task_id])
    store_event(sessions, task_id, "evt_a")
    store_event(sessions, task_id, "evt_b")
    process_event(sessions, proc_settings, "evt_a")
    simulator.reset_requests()

    outcome = process_event(sessions, proc_settings, "evt_b")

    assert outcome is not None
    assert outcome.status is EventStatus.PROCESSED
    assert simulator.requests("/results/") == []
    assert len(outputs(sessions, task_id)) == 2


def test_concurrent_events_for_one_generation_give_one_set_of_outputs(
    simulator: Simulator, proc_settings: Settings, sessions: sessionmaker[Session]
) -> None:
    (task_id,) = simulator.scenario(1, outcome="succeeded")
    simulator.wait_terminal([task_id])
    ids = [store_event(sessions, task_id, f"evt_{n}") for n in range(4)]
    barrier = threading.Barrier(len(ids))

    def run(event_id: str) -> None:
        barrier.wait()
        process_event(sessions, proc_settings, event_id)

    threads = [threading.Thread(target=run, args=(i,)) for i in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert [o.index for o in outputs(sessions, task_id)] == [0, 1]
    assert {event(sessions, i).status for i in ids} == {EventStatus.PROCESSED}
    storage_root = Path(proc_settings.storage_root())
    files = [p for p in storage_root.rglob("*") if p.is_file()]
    assert len(files) == 2


def test_failed_generation_records_its_error(
    simulator: Simulator, proc_settings: Settings, sessions: sessionmaker[Session]
) -> None:
    (task_id,) = simulator.scenario(1, outcome="failed")
    (document,) = simulator.wait_terminal([task_id])
    store_event(sessions, task_id, "evt_f")

    outcome = process_event(sessions, proc_settings, "evt_f")

    assert outcome is not None
    assert outcome.status is EventStatus.PROCESSED
    with sessions() as session:
        generation = session.scalars(select(Generation)).one()
    assert generation.status is GenerationStatus.FAILED
    assert generation.error_code == document["error"]["code"]
    assert generation.final_credits == 0
    assert outputs(sessions, task_id) == []


def test_unknown_task_is_ignored_with_the_reason(
    proc_settings: Settings, sessions: sessionmaker[Session]
) -> None:
    store_event(sessions, "task_does_not_exist", "evt_x")
    outcome = process_event(sessions, proc_settings, "evt_x")
    assert outcome is not None
    assert outcome.status is EventStatus.IGNORED
    row = event(sessions, "evt_x")
    assert row.status is EventStatus.IGNORED
    assert row.status_reason is not None
    assert row.status_reason.startswith("not_found")


def test_expired_url_is_refetched(
    simulator: Simulator, proc_settings: Settings, sessions: sessionmaker[Session]
) -> None:
    (task_id,) = simulator.scenario(1, outcome="succeeded")
    simulator.wait_terminal([task_id])
    store_event(sessions, task_id, "evt_e")
    # Every URL minted from now on is already expired, then fresh ones again.
    simulator.set_faults(expire_early_ratio=1.0)
    first = simulator.generation(task_id)
    simulator.set_faults(expire_early_ratio=0.0)
    assert first["result"]["urls"]

    outcome = process_event(sessions, proc_settings, "evt_e")

    assert outcome is not None
    assert outcome.status is EventStatus.PROCESSED
    assert len(outputs(sessions, task_id)) == 2


def test_download_cut_short_is_retried_and_never_stored(
    simulator: Simulator, proc_settings: Settings, sessions: sessionmaker[Session]
) -> None:
    (task_id,) = simulator.scenario(1, outcome="succeeded")
    simulator.wait_terminal([task_id])
    store_event(sessions, task_id, "evt_c")
    simulator.set_faults(cut_download_ratio=1.0)

    with pytest.raises(RetryLater):
        process_event(sessions, proc_settings, "evt_c")

    row = event(sessions, "evt_c")
    assert row.status is EventStatus.FAILED
    assert row.last_error
    assert outputs(sessions, task_id) == []
    storage = FileStorage(proc_settings.storage_root())
    assert [p for p in storage.root.rglob("*") if p.is_file()] == []

    simulator.set_faults(cut_download_ratio=0.0)
    outcome = process_event(sessions, proc_settings, "evt_c")
    assert outcome is not None
    assert outcome.status is EventStatus.PROCESSED
    assert len(outputs(sessions, task_id)) == 2


def test_attempts_are_bounded_then_dead(
    simulator: Simulator,
    proc_settings: Settings,
    sessions: sessionmaker[Session],
    caplog: pytest.LogCaptureFixture,
) -> None:
    (task_id,) = simulator.scenario(1, outcome="succeeded")
    simulator.wait_terminal([task_id])
    store_event(sessions, task_id, "evt_d")
    simulator.set_faults(cut_download_ratio=1.0)
    settings = proc_settings.replace(process_max_attempts=2)

    with pytest.raises(RetryLater):
        process_event(sessions, settings, "evt_d")
    outcome = process_event(sessions, settings, "evt_d")

    assert outcome is not None
    assert outcome.status is EventStatus.DEAD
    row = event(sessions, "evt_d")
    assert row.status is EventStatus.DEAD
    assert row.attempts == 2
    assert "gave up after 2 attempts" in (row.status_reason or "")
    # An operator's alerting reads the log: the death is an error line with its reason.
    (line,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert "evt_d dead: gave up after 2 attempts" in line.getMessage()
