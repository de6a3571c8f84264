"""The sweeper takes back lapsed claims and publishes again what the broker lost."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session, sessionmaker

from models.base import utcnow
from models.events import AttemptOutcome, EventStatus
from tasks.claims import claim_event
from tasks.runtime import Runtime
from tasks.sweep import sweep
from tests.support.attempts import (
    change,
)
from tests.support.inbox import add_event, attempt_history, read_event


def test_the_sweeper_takes_back_a_lapsed_claim(
    runtime: Runtime, sessions: sessionmaker[Session]
) -> None:
    add_event(sessions, "evt_lapsed", task_id="task_lapsed")
    add_event(sessions, "evt_spent", task_id="task_spent")
    assert claim_event(runtime, "evt_lapsed") is not None
    assert claim_event(runtime, "evt_spent") is not None
    past = utcnow() - dt.timedelta(seconds=1)
    change(sessions, "evt_lapsed", lease_expires_at=past)
    change(
        sessions,
        "evt_spent",
        lease_expires_at=past,
        attempts=runtime.settings.process_max_attempts,
    )

    result = sweep(runtime)

    assert result.leases_expired == 2
    lapsed = read_event(sessions, "evt_lapsed")
    assert lapsed.status is EventStatus.FAILED
    assert lapsed.next_attempt_at is not None
    assert lapsed.next_attempt_at <= utcnow()
    assert lapsed.claim_token is None
    assert "the lease expired" in (lapsed.last_error or "")
    assert attempt_history(sessions, "evt_lapsed") == [(1, AttemptOutcome.EXPIRED)]
    spent = read_event(sessions, "evt_spent")
    assert spent.status is EventStatus.DEAD
    assert (spent.status_reason or "").startswith("gave up after")


def test_the_sweeper_publishes_again_what_the_broker_lost(
    runtime: Runtime, sessions: sessionmaker[Session]
) -> None:
    window = dt.timedelta(seconds=runtime.settings.task_visibility_timeout_seconds)
    for event_id, age in (("evt_lost", window * 2), ("evt_queued", dt.timedelta(seconds=1))):
        add_event(sessions, event_id, task_id="task_" + event_id)
        change(sessions, event_id, status=EventStatus.ENQUEUED, enqueued_at=utcnow() - age)

    result = sweep(runtime)

    assert result.messages_lost == 1
    lost = read_event(sessions, "evt_lost")
    assert lost.status is EventStatus.RECEIVED
    assert lost.next_attempt_at is not None
    assert read_event(sessions, "evt_queued").status is EventStatus.ENQUEUED
