"""The one replay behind `rivya-hooks replay` and the console: plan, move, record together."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from models.events import EventStatus, WebhookEvent
from models.operator_actions import OperatorAction, record_action
from models.replay import ReplayStep, apply_replay, plan_replay
from tests.support.inbox import add_event, read_event


def _plan(sessions: sessionmaker[Session], *event_ids: str) -> list[ReplayStep]:
    return [plan_replay(read_event(sessions, event_id)) for event_id in event_ids]


def _record(session: Session, step: ReplayStep) -> None:
    record_action(
        session,
        action="replay",
        role="admin",
        token_fingerprint="f" * 16,
        event_id=step.event_id,
        detail=step.action,
    )


def _actions(sessions: sessionmaker[Session]) -> list[tuple[str | None, str | None]]:
    with sessions() as session:
        return [
            (a.event_id, a.detail)
            for a in session.scalars(select(OperatorAction).order_by(OperatorAction.id))
        ]


def test_a_replay_moves_the_event_to_the_relay_and_records_it(
    sessions: sessionmaker[Session],
) -> None:
    add_event(sessions, "evt_dead", status=EventStatus.DEAD)
    with sessions.begin() as session:
        session.execute(update(WebhookEvent).values(attempts=3, last_error="boom"))
    (step,) = apply_replay(sessions, _plan(sessions, "evt_dead"), record=_record)
    assert step.moves
    event = read_event(sessions, "evt_dead")
    assert (event.status, event.attempts) == (EventStatus.RECEIVED, 0)
    assert event.next_attempt_at is not None
    assert event.status_reason == "replayed by an operator"
    assert _actions(sessions) == [("evt_dead", "be processed again (stored outputs are kept)")]


def test_a_failed_record_undoes_the_move(sessions: sessionmaker[Session]) -> None:
    add_event(sessions, "evt_dead", status=EventStatus.DEAD)

    def broken_record(session: Session, step: ReplayStep) -> None:
        raise RuntimeError("the record could not be written")

    with pytest.raises(RuntimeError):
        apply_replay(sessions, _plan(sessions, "evt_dead"), record=broken_record)
    assert read_event(sessions, "evt_dead").status is EventStatus.DEAD


def test_an_event_that_moved_since_the_plan_stays_and_says_so(
    sessions: sessionmaker[Session],
) -> None:
    add_event(sessions, "evt_dead", status=EventStatus.DEAD)
    plan = _plan(sessions, "evt_dead")
    apply_replay(sessions, _plan(sessions, "evt_dead"))  # another operator was quicker
    (step,) = apply_replay(sessions, plan, record=_record)
    assert not step.moves
    assert step.after is EventStatus.DEAD
    assert "changed meanwhile" in step.action
    assert _actions(sessions) == [("evt_dead", step.action)]


def test_an_unreadable_quarantined_event_stays_and_a_readable_one_is_read_again(
    sessions: sessionmaker[Session],
) -> None:
    add_event(sessions, "evt_junk", status=EventStatus.QUARANTINED, body=b"not json")
    body = b'{"id": "evt_ok", "type": "generation.succeeded", "data": {"id": "task_ok"}}'
    add_event(sessions, "evt_ok", status=EventStatus.QUARANTINED, body=body)
    junk, readable = apply_replay(sessions, _plan(sessions, "evt_junk", "evt_ok"))
    assert (junk.moves, readable.moves) == (False, True)
    assert read_event(sessions, "evt_junk").status is EventStatus.QUARANTINED
    event = read_event(sessions, "evt_ok")
    assert (event.status, event.task_id) == (EventStatus.RECEIVED, "task_ok")
