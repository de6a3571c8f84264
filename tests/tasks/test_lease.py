"""Short leases: renewed while the attempt runs, free soon after its holder stops renewing.

Real processing code against a real database and the simulator over HTTP; each test
asserts on the rows it leaves, with a lease of a few seconds.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from models.events import AttemptOutcome, EventStatus
from rivyahooks_foundation.settings import Settings
from rivyahooks_simulator.server import Simulator
from tasks.claims import claim_event
from tasks.processing import process_event
from tasks.runtime import Runtime
from tasks.sweep import sweep
from tests.support.attempts import settings_for
from tests.support.eventually import eventually
from tests.support.inbox import add_event, attempt_history, read_event

LEASE_SECONDS = 3


@pytest.fixture
def runtime(settings: Settings, simulator: Simulator) -> Iterator[Runtime]:
    short = settings.replace(process_lease_seconds=LEASE_SECONDS)
    runtime = Runtime(settings_for(short, simulator.url, simulator.api_key))
    yield runtime
    runtime.close()


def test_a_claim_whose_holder_stops_renewing_is_claimable_after_its_lease(
    runtime: Runtime, sessions: sessionmaker[Session]
) -> None:
    add_event(sessions, "evt_gone", task_id="task_gone")
    # A worker claims the event and is killed: nothing renews its lease.
    first = claim_event(runtime, "evt_gone")
    assert first is not None
    assert claim_event(runtime, "evt_gone") is None

    second = eventually(
        lambda: claim_event(runtime, "evt_gone"),
        LEASE_SECONDS + 5,
        what="a claim once the unrenewed lease lapsed",
    )

    assert (second.number, second.attempts) == (2, 2)
    event = read_event(sessions, "evt_gone")
    assert (event.status, event.claim_token) == (EventStatus.PROCESSING, second.token)
    assert attempt_history(sessions, "evt_gone") == [(1, AttemptOutcome.EXPIRED), (2, None)]


def test_a_running_attempt_keeps_its_lease_moving_forward(
    runtime: Runtime, sessions: sessionmaker[Session], simulator: Simulator
) -> None:
    (task_id,) = simulator.scenario(1, outcome="succeeded")
    simulator.wait_terminal([task_id])
    add_event(sessions, "evt_long", task_id=task_id)
    # Rivya answers after several leases' time: only renewals keep the claim.
    simulator.set_faults(slow_ratio=1.0, slow_seconds=3 * LEASE_SECONDS)
    outcomes: list[object] = []
    worker = threading.Thread(target=lambda: outcomes.append(process_event(runtime, "evt_long")))
    worker.start()
    try:
        claimed = eventually(
            lambda: read_event(sessions, "evt_long").lease_expires_at,
            10,
            what="the claim",
        )
        renewed = eventually(
            lambda: (
                (lease := read_event(sessions, "evt_long").lease_expires_at) is not None
                and lease > claimed
                and lease
            ),
            LEASE_SECONDS,
            what="a renewal of the lease",
        )
        eventually(
            lambda: (
                (lease := read_event(sessions, "evt_long").lease_expires_at) is not None
                and lease > renewed
            ),
            LEASE_SECONDS,
            what="a second renewal",
        )
        # Past its first lease the attempt still holds the event: no sweep or claim takes it.
        assert sweep(runtime).leases_expired == 0
        assert claim_event(runtime, "evt_long") is None
    finally:
        worker.join(60)
        simulator.set_faults(slow_ratio=0.0)

    assert len(outcomes) == 1
    event = read_event(sessions, "evt_long")
    assert (event.status, event.attempts, event.lease_expires_at) == (
        EventStatus.PROCESSED,
        1,
        None,
    )
    assert attempt_history(sessions, "evt_long") == [(1, AttemptOutcome.PROCESSED)]
