"""A generation's outputs: stored one by one, recorded together, and never left unrecorded.

A small server answers as Rivya and as its result host, so that one download of a
generation can fail while the others succeed.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.wrappers import Request, Response

from models.events import EventStatus
from models.generations import Generation, GenerationOutput
from rivyahooks_foundation.settings import Settings
from tasks.processing import process_event
from tests.support.attempts import generation, rivya_answering
from tests.support.eventually import eventually
from tests.support.inbox import add_event, read_event

TASK_ID = "task_three_outputs"


def body(index: int) -> bytes:
    return f"result {index} ".encode() * 1000


class ResultHost:
    """Rivya's generation (three outputs) and its result files; output 2 answers `failing`."""

    def __init__(self, failing: int) -> None:
        self.failing = failing
        self.downloads: Counter[int] = Counter()

    def answer(self, request: Request) -> Response:
        if request.path.startswith("/results/"):
            index = int(request.path.rsplit("/", 1)[1])
            self.downloads[index] += 1
            if index == 2 and self.failing:
                return Response("not now\n", status=self.failing)
            return Response(body(index), content_type="image/png")
        return generation(TASK_ID, [f"{request.host_url}results/{n}" for n in range(3)])


def recorded(sessions: sessionmaker[Session]) -> dict[int, str]:
    """Return the recorded outputs' storage keys by index."""
    with sessions() as session:
        rows = session.execute(
            select(GenerationOutput.index, GenerationOutput.storage_key, GenerationOutput.sha256)
        ).all()
    for index, _, sha256 in rows:
        assert sha256 == hashlib.sha256(body(index)).hexdigest()
    return {index: key for index, key, _ in rows}


def stored_files(settings: Settings) -> list[str]:
    root = Path(settings.storage_root())
    return sorted(p.relative_to(root).as_posix() for p in (root / TASK_ID).glob("*"))


def results_stored(sessions: sessionmaker[Session]) -> bool:
    with sessions() as session:
        stored_at = session.scalar(
            select(Generation.results_stored_at).where(Generation.task_id == TASK_ID)
        )
    return stored_at is not None


def test_outputs_stored_before_a_failed_download_are_recorded_and_not_fetched_again(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    host = ResultHost(failing=503)
    add_event(sessions, "evt_partial", task_id=TASK_ID)
    with rivya_answering(settings, host.answer) as runtime:
        first = process_event(runtime, "evt_partial")

        assert first is not None
        assert first.status is EventStatus.FAILED
        assert "download 2" in (first.reason or "")
        # Every file at its key has its row; the generation is not complete yet.
        assert sorted(recorded(sessions)) == [0, 1]
        assert stored_files(runtime.settings) == sorted(recorded(sessions).values())
        assert not results_stored(sessions)

        host.failing = 0
        # The retry falls due within milliseconds of the failure (the tests' settings).
        second = eventually(
            lambda: process_event(runtime, "evt_partial"), 5, what="the retry to be due"
        )

    assert second is not None
    assert second.status is EventStatus.PROCESSED, read_event(sessions, "evt_partial").last_error
    assert second.outputs_stored == 1
    assert host.downloads == {0: 1, 1: 1, 2: 2}
    assert sorted(recorded(sessions)) == [0, 1, 2]
    assert stored_files(runtime.settings) == sorted(recorded(sessions).values())
    assert results_stored(sessions)


def test_outputs_stored_before_a_refused_download_are_recorded_when_the_event_dies(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    host = ResultHost(failing=400)
    add_event(sessions, "evt_refused", task_id=TASK_ID)
    with rivya_answering(settings, host.answer) as runtime:
        outcome = process_event(runtime, "evt_refused")

    assert outcome is not None
    assert outcome.status is EventStatus.DEAD
    assert sorted(recorded(sessions)) == [0, 1]
    assert stored_files(runtime.settings) == sorted(recorded(sessions).values())
    assert not results_stored(sessions)


@pytest.mark.parametrize("events", [1, 2])
def test_every_output_is_recorded_once_with_the_generation_marked(
    settings: Settings, sessions: sessionmaker[Session], events: int
) -> None:
    host = ResultHost(failing=0)
    for number in range(events):
        add_event(sessions, f"evt_{number}", task_id=TASK_ID)
    with rivya_answering(settings, host.answer) as runtime:
        outcomes = [process_event(runtime, f"evt_{number}") for number in range(events)]

    assert [o.status if o else None for o in outcomes] == [EventStatus.PROCESSED] * events
    # The second event finds the generation complete: it downloads and records nothing.
    assert [o.outputs_stored if o else None for o in outcomes] == [3, 0][:events]
    assert host.downloads == {0: 1, 1: 1, 2: 1}
    assert sorted(recorded(sessions)) == [0, 1, 2]
    assert stored_files(runtime.settings) == sorted(recorded(sessions).values())
    assert results_stored(sessions)
