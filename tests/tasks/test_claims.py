"""Claims and leases: a second claim is refused, a stale finish is dropped, lapsed leases end.

Real processing code against a real database; each test asserts on the rows it leaves.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session, sessionmaker

from models.base import utcnow
from models.events import AttemptOutcome, EventStatus
from tasks.claims import LapsedClaim, claim_event, expire_lease
from tasks.outcomes import Outcome, record_outcome
from tasks.runtime import Runtime
from tests.support.attempts import (
    change,
)
from tests.support.inbox import add_event, attempt_history, read_event

# --- claims --------------------------------------------------------------------------------


def test_a_second_claim_is_refused_and_a_stale_finish_is_dropped(
    runtime: Runtime, sessions: sessionmaker[Session]
) -> None:
    add_event(sessions, "evt_claim", task_id="task_claimed")
    first = claim_event(runtime, "evt_claim")
    assert first is not None
    assert claim_event(runtime, "evt_claim") is None
    assert read_event(sessions, "evt_claim").claim_token == first.token

    # The first worker hangs past its lease: the next claim takes over.
    change(sessions, "evt_claim", lease_expires_at=utcnow() - dt.timedelta(seconds=1))
    second = claim_event(runtime, "evt_claim")
    assert second is not None
    assert (second.number, second.attempts) == (2, 2)
    assert attempt_history(sessions, "evt_claim") == [(1, AttemptOutcome.EXPIRED), (2, None)]

    # The first worker wakes up and finishes: its outcome must not overwrite the second's.
    assert record_outcome(runtime, first, Outcome(EventStatus.IGNORED, "stale")) is False
    event = read_event(sessions, "evt_claim")
    assert (event.status, event.claim_token) == (EventStatus.PROCESSING, second.token)

    assert record_outcome(runtime, second, Outcome(EventStatus.PROCESSED)) is True
    assert read_event(sessions, "evt_claim").status is EventStatus.PROCESSED
    assert attempt_history(sessions, "evt_claim") == [
        (1, AttemptOutcome.EXPIRED),
        (2, AttemptOutcome.PROCESSED),
    ]


def test_the_attempt_limit_is_checked_at_claim(
    runtime: Runtime, sessions: sessionmaker[Session]
) -> None:
    add_event(sessions, "evt_spent", task_id="task_spent")
    change(
        sessions,
        "evt_spent",
        status=EventStatus.FAILED,
        attempts=runtime.settings.process_max_attempts,
        next_attempt_at=utcnow() - dt.timedelta(seconds=1),
        last_error="boom",
    )

    assert claim_event(runtime, "evt_spent") is None

    event = read_event(sessions, "evt_spent")
    assert event.status is EventStatus.DEAD
    assert event.status_reason == (
        f"gave up after {runtime.settings.process_max_attempts} attempts; last error: boom"
    )


def test_a_failed_event_is_not_claimed_before_it_is_due(
    runtime: Runtime, sessions: sessionmaker[Session]
) -> None:
    add_event(sessions, "evt_later", task_id="task_later")
    due = utcnow() + dt.timedelta(hours=1)
    change(sessions, "evt_later", status=EventStatus.FAILED, attempts=1, next_attempt_at=due)
    assert claim_event(runtime, "evt_later") is None
    assert read_event(sessions, "evt_later").status is EventStatus.FAILED


# --- lapsed leases -------------------------------------------------------------------------


def test_the_sweeper_leaves_alone_an_event_claimed_since_it_read_it(
    runtime: Runtime, sessions: sessionmaker[Session]
) -> None:
    add_event(sessions, "evt_race", task_id="task_race")
    first = claim_event(runtime, "evt_race")
    assert first is not None
    change(sessions, "evt_race", lease_expires_at=utcnow() - dt.timedelta(seconds=1))
    # What the sweeper read ...
    event = read_event(sessions, "evt_race")
    assert event.lease_expires_at is not None
    read = LapsedClaim(
        event.id, event.event_id, event.claim_token, event.attempts, event.lease_expires_at
    )
    # ... before a worker claimed it (its redelivered message arrived first).
    second = claim_event(runtime, "evt_race")
    assert second is not None

    assert expire_lease(runtime, read, utcnow()) is False

    event = read_event(sessions, "evt_race")
    assert (event.status, event.claim_token) == (EventStatus.PROCESSING, second.token)
    assert attempt_history(sessions, "evt_race") == [(1, AttemptOutcome.EXPIRED), (2, None)]
