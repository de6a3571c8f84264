"""Failures are recorded, whatever raised them: one regression test per way it went wrong.

Each test runs the real processing code against a real database and a real HTTP server
(the simulator, or a small server answering as the simulator never would) and asserts on
the rows it leaves.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.wrappers import Request, Response

from models.events import AttemptOutcome, EventStatus
from rivyahooks_foundation import faultpoints
from rivyahooks_foundation.settings import Settings
from rivyahooks_simulator.server import Simulator
from tasks.outcomes import STORAGE_FULL_RETRY_MAX_SECONDS, storage_full_delay
from tasks.processing import process_event
from tasks.runtime import Runtime
from tests.support.attempts import (
    generation,
    rivya_answering,
    settings_for,
)
from tests.support.eventually import eventually
from tests.support.inbox import add_event, attempt_history, read_event


def test_a_task_id_no_url_can_hold_ends_dead_with_the_reason(
    runtime: Runtime, sessions: sessionmaker[Session]
) -> None:
    add_event(sessions, "evt_dots", task_id="..")

    outcome = process_event(runtime, "evt_dots")

    assert outcome is not None
    assert outcome.status is EventStatus.DEAD
    event = read_event(sessions, "evt_dots")
    assert event.status is EventStatus.DEAD
    assert "invalid id '..'" in (event.status_reason or "")
    assert event.last_error == event.status_reason
    assert attempt_history(sessions, "evt_dots") == [(1, AttemptOutcome.DEAD)]


def test_a_result_url_httpx_refuses_ends_dead_with_the_reason(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    def answer(request: Request) -> Response:
        # A control character: urlsplit takes it, httpx refuses to build the request.
        return generation("task_bad_url", [f"{request.host_url}results/a\x7fb"])

    add_event(sessions, "evt_url", task_id="task_bad_url")
    with rivya_answering(settings, answer) as runtime:
        outcome = process_event(runtime, "evt_url")

    assert outcome is not None
    assert outcome.status is EventStatus.DEAD
    event = read_event(sessions, "evt_url")
    assert event.status is EventStatus.DEAD
    assert "download 0: the URL is not usable" in (event.status_reason or "")


@pytest.fixture
def armed(tmp_path: Path) -> Iterator[Path]:
    """Fault points enabled in this process; a file named after a point arms it."""
    faultpoints.arm(str(tmp_path))
    yield tmp_path
    faultpoints.arm("")


def test_an_unexpected_exception_is_a_failure_counted_against_the_attempts(
    runtime: Runtime, simulator: Simulator, sessions: sessionmaker[Session], armed: Path
) -> None:
    (task_id,) = simulator.scenario(1, outcome="succeeded")
    simulator.wait_terminal([task_id])
    add_event(sessions, "evt_bug", task_id=task_id)
    (armed / "worker.fetched").write_text("raise")

    first = process_event(runtime, "evt_bug")

    assert first is not None
    assert first.status is EventStatus.FAILED
    event = read_event(sessions, "evt_bug")
    assert event.status is EventStatus.FAILED
    assert event.attempts == 1
    assert event.last_error == "InjectedFault: fault injected at worker.fetched"
    assert event.next_attempt_at is not None
    assert event.claim_token is None

    second = eventually(lambda: process_event(runtime, "evt_bug"), 5, what="the retry")
    assert second.status is EventStatus.PROCESSED
    assert attempt_history(sessions, "evt_bug") == [
        (1, AttemptOutcome.FAILED),
        (2, AttemptOutcome.PROCESSED),
    ]


def test_an_unexpected_exception_on_the_last_attempt_ends_dead(
    settings: Settings, simulator: Simulator, sessions: sessionmaker[Session], armed: Path
) -> None:
    (task_id,) = simulator.scenario(1, outcome="succeeded")
    simulator.wait_terminal([task_id])
    add_event(sessions, "evt_last", task_id=task_id)
    (armed / "worker.applied").write_text("raise")
    runtime = Runtime(
        settings_for(settings, simulator.url, simulator.api_key).replace(process_max_attempts=1)
    )
    try:
        outcome = process_event(runtime, "evt_last")
    finally:
        runtime.close()

    assert outcome is not None
    assert outcome.status is EventStatus.DEAD
    event = read_event(sessions, "evt_last")
    assert event.status is EventStatus.DEAD
    assert event.status_reason == (
        "gave up after 1 attempts: InjectedFault: fault injected at worker.applied"
    )


def test_a_full_storage_is_retried_about_every_minute() -> None:
    # Slower than the ordinary backoff's first seconds, never the hours a doubling would
    # reach: once room is back, a waiting event is processed within two minutes.
    waits = [storage_full_delay() for _ in range(50)]
    assert min(waits) >= STORAGE_FULL_RETRY_MAX_SECONDS / 2
    assert max(waits) <= STORAGE_FULL_RETRY_MAX_SECONDS <= 90
