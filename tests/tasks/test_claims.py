"""Claims and leases: a second claim is refused, a stale finish is dropped, lapsed leases end.

Real processing code against a real database; each test asserts on the rows it leaves.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from models.base import utcnow
from models.db import make_session_factory
from models.events import AttemptOutcome, EventStatus
from rivyahooks_foundation.settings import Settings
from tasks.claims import LapsedClaim, claim_event, expire_lease
from tasks.outcomes import Outcome, record_outcome
from tasks.runtime import Runtime
from tests.support import services
from tests.support.attempts import (
    change,
    settings_for,
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

    assert expire_lease(runtime, read) is False

    event = read_event(sessions, "evt_race")
    assert (event.status, event.claim_token) == (EventStatus.PROCESSING, second.token)
    assert attempt_history(sessions, "evt_race") == [(1, AttemptOutcome.EXPIRED), (2, None)]


# --- clocks: the database's, never the host's ----------------------------------------------

SKEWED_SWEEP_AND_CLAIM = """
import sys, time
from rivyahooks_foundation.settings import Settings
from tasks.claims import claim_event
from rivyahooks_foundation.settings import Settings
from tasks.runtime import Runtime
from tasks.sweep import sweep

runtime = Runtime(Settings(database_url=sys.argv[1], storage_url=sys.argv[2]))
swept = sweep(runtime)
claim = claim_event(runtime, sys.argv[3])
print(time.time(), swept.leases_expired, claim is not None)
runtime.close()
"""


@pytest.mark.postgres
def test_a_host_whose_clock_runs_ahead_does_not_take_over_a_live_lease(
    postgres_url: str, postgres_engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    faketime = services.installed("faketime", "Debian package `faketime`", ".ci/run installs it")
    sessions = make_session_factory(postgres_engine)
    add_event(sessions, "evt_skew", task_id="task_skew")
    runtime = Runtime(
        settings_for(settings.replace(database_url=postgres_url), "http://127.0.0.1:9")
    )
    try:
        first = claim_event(runtime, "evt_skew")
    finally:
        runtime.close()
    assert first is not None

    # Another worker host whose clock runs five minutes ahead sweeps, then is handed the
    # event's message: on its clock the lease is long over, on the database's it is live.
    skew = 300
    started = time.time()
    done = subprocess.run(
        [
            faketime,
            "-f",
            f"+{skew}s",
            sys.executable,
            "-c",
            SKEWED_SWEEP_AND_CLAIM,
            postgres_url,
            f"file://{tmp_path / 'results'}",
            "evt_skew",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, "FAKETIME_DONT_FAKE_MONOTONIC": "1"},
    )
    their_time, expired, claimed = done.stdout.split()
    assert float(their_time) - started > skew - 60, "faketime did not move the child's clock"
    assert (expired, claimed) == ("0", "False")
    event = read_event(sessions, "evt_skew")
    assert (event.status, event.claim_token) == (EventStatus.PROCESSING, first.token)
    assert attempt_history(sessions, "evt_skew") == [(1, None)]
