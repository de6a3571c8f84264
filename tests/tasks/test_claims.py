"""Nothing stranded: claims, leases and failures, one regression test per way it went wrong.

Each test runs the real processing code against a real database and a real HTTP server
(the simulator, or a small server answering as the simulator never would) and asserts on
the rows it leaves.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.wrappers import Request, Response

from models.base import utcnow
from models.events import AttemptOutcome, EventStatus, WebhookEvent
from models.generations import GenerationOutput
from rivyahooks_foundation import faultpoints
from rivyahooks_foundation.settings import Settings
from rivyahooks_simulator.config import Faults, SimConfig
from rivyahooks_simulator.server import Simulator
from tasks.claims import LapsedClaim, claim_event, expire_lease
from tasks.outcomes import DatabaseUnavailable, Outcome, record_outcome
from tasks.processing import process_event
from tasks.runtime import Runtime
from tasks.sweep import sweep
from tests.support import services
from tests.support.eventually import eventually
from tests.support.httpserver import serving
from tests.support.inbox import add_event, attempt_history, read_event
from tests.support.processes import celery_worker, own_redis_database, relay
from tests.support.tcpproxy import tcp_proxy

OUTPUT_BYTES = 4096
E = WebhookEvent


def settings_for(settings: Settings, api_base: str, api_key: str = "rvya_sk_test") -> Settings:
    return settings.replace(
        rivya_api_base=api_base,
        rivya_api_key=api_key,
        download_allowed_hosts=("127.0.0.1",),
        rivya_max_attempts=1,
        # Retries fall due within milliseconds: the tests run the next attempt themselves.
        process_retry_base_seconds=0.01,
        process_time_limit_seconds=30,
    )


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    config = SimConfig(queued_seconds=0, processing_seconds=0, outputs=1, output_bytes=OUTPUT_BYTES)
    with Simulator(config=config, faults=Faults(), seed=9).start() as sim:
        yield sim


@pytest.fixture
def runtime(settings: Settings, simulator: Simulator) -> Iterator[Runtime]:
    runtime = Runtime(settings_for(settings, simulator.url, simulator.api_key))
    yield runtime
    runtime.close()


@contextmanager
def rivya_answering(settings: Settings, answer: Callable[[Request], Response]) -> Iterator[Runtime]:
    """Yield a Runtime whose Rivya is a server answering with `answer`."""
    with serving(answer) as url:
        runtime = Runtime(settings_for(settings, url))
        try:
            yield runtime
        finally:
            runtime.close()


def generation(task_id: str, urls: list[str]) -> Response:
    document = {
        "id": task_id,
        "status": "succeeded",
        "model": "rivya-image-1",
        "reserved_credits": 1,
        "final_credits": 1,
        "created_at": "2026-05-11T10:00:00.000Z",
        "updated_at": "2026-05-11T10:00:05.000Z",
        "result": {"primary_url": urls[0], "urls": urls},
        "error": None,
    }
    return Response(json.dumps(document), content_type="application/json")


def change(sessions: sessionmaker[Session], event_id: str, **values: Any) -> None:
    with sessions.begin() as session:
        session.execute(update(E).where(E.event_id == event_id).values(**values))


# --- failures are recorded, whatever raised them ---------------------------------------


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


def test_a_content_type_longer_than_its_column_is_cut_before_storing(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    body = b"result bytes " * 100
    content_type = "image/png; comment=" + "x" * 400

    def answer(request: Request) -> Response:
        if request.path.startswith("/results/"):
            return Response(body, headers={"Content-Type": content_type})
        return generation("task_long_type", [f"{request.host_url}results/0"])

    add_event(sessions, "evt_type", task_id="task_long_type")
    with rivya_answering(settings, answer) as runtime:
        outcome = process_event(runtime, "evt_type")

    assert outcome is not None
    assert outcome.status is EventStatus.PROCESSED, read_event(sessions, "evt_type").last_error
    with sessions() as session:
        (output,) = session.scalars(select(GenerationOutput)).all()
    assert output.content_type == content_type[:255]
    assert output.sha256 == hashlib.sha256(body).hexdigest()


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


def test_a_bare_404_is_a_failure_that_names_rivya_api_base(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    def answer(request: Request) -> Response:
        # What a proxy or another server says at a wrong base URL: no Rivya error envelope.
        return Response("<html>404 Not Found</html>", status=404, content_type="text/html")

    add_event(sessions, "evt_404", task_id="task_somewhere")
    with rivya_answering(settings, answer) as runtime:
        outcome = process_event(runtime, "evt_404")

    assert outcome is not None
    assert outcome.status is EventStatus.FAILED
    event = read_event(sessions, "evt_404")
    assert event.status is EventStatus.FAILED
    assert "RIVYA_API_BASE" in (event.last_error or "")
    assert "not_found" in (event.last_error or "")


# --- claims -------------------------------------------------------------------------------


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


# --- the sweeper --------------------------------------------------------------------------


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


# --- database outages ------------------------------------------------------------------


@pytest.mark.postgres
def test_a_database_outage_mid_attempt_resumes_the_same_claim(
    postgres_url: str, settings: Settings, simulator: Simulator, postgres_engine: Any
) -> None:
    from models.db import make_session_factory

    sessions = make_session_factory(postgres_engine)
    (task_id,) = simulator.scenario(1, outcome="succeeded")
    simulator.wait_terminal([task_id])
    add_event(sessions, "evt_db", task_id=task_id)
    # Rivya answers slowly: the database goes away while the attempt waits for it.
    simulator.set_faults(slow_ratio=1.0, slow_seconds=1.0)
    target = urlsplit(services.POSTGRES_ADMIN_URL)
    with tcp_proxy(target.hostname or "127.0.0.1", target.port or 5432) as proxy:
        proxied = make_url(postgres_url).set(host="127.0.0.1", port=proxy.port)
        runtime = Runtime(
            settings_for(
                settings.replace(database_url=proxied.render_as_string(hide_password=False)),
                simulator.url,
                simulator.api_key,
            )
        )
        raised: list[BaseException] = []

        def attempt() -> None:
            try:
                process_event(runtime, "evt_db")
            except BaseException as exc:
                raised.append(exc)

        worker = threading.Thread(target=attempt)
        try:
            worker.start()
            eventually(
                lambda: read_event(sessions, "evt_db").status is EventStatus.PROCESSING,
                10,
                what="claim",
            )
            proxy.cut()
            worker.join(30)
            (error,) = raised
            assert isinstance(error, DatabaseUnavailable)
            claimed = read_event(sessions, "evt_db")
            assert claimed.status is EventStatus.PROCESSING
            assert error.resume == claimed.claim_token

            proxy.restore()
            simulator.set_faults(slow_ratio=0.0)
            # A plain redelivery is refused: the claim is live ...
            assert process_event(runtime, "evt_db") is None
            # ... the task's own retry resumes it, as the same attempt.
            outcome = process_event(runtime, "evt_db", resume=error.resume)
        finally:
            runtime.close()

    assert outcome is not None
    assert outcome.status is EventStatus.PROCESSED
    event = read_event(sessions, "evt_db")
    assert event.status is EventStatus.PROCESSED
    assert event.attempts == 1
    assert attempt_history(sessions, "evt_db") == [(1, AttemptOutcome.PROCESSED)]


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
def test_a_real_worker_rides_out_a_database_outage_without_losing_the_attempt(
    postgres_url: str, redis_url: str, postgres_engine: Any, simulator: Simulator, tmp_path: Path
) -> None:
    from models.db import make_session_factory

    sessions = make_session_factory(postgres_engine)
    settings = settings_for(
        Settings(
            database_url=postgres_url,
            broker_url=own_redis_database(redis_url, 10),
            storage_url=f"file://{tmp_path / 'results'}",
        ),
        simulator.url,
        simulator.api_key,
    )
    (task_id,) = simulator.scenario(1, outcome="succeeded")
    simulator.wait_terminal([task_id])
    # Rivya answers slowly: the database goes away while the attempt waits for it.
    simulator.set_faults(slow_ratio=1.0, slow_seconds=1.0)
    target = urlsplit(services.POSTGRES_ADMIN_URL)
    with tcp_proxy(target.hostname or "127.0.0.1", target.port or 5432) as proxy:
        proxied = make_url(postgres_url).set(host="127.0.0.1", port=proxy.port)
        worker_settings = settings.replace(
            database_url=proxied.render_as_string(hide_password=False)
        )
        with (
            relay(settings, log=tmp_path / "relay.log"),
            celery_worker(worker_settings, concurrency=1, log=tmp_path / "worker.log"),
        ):
            add_event(sessions, "evt_outage", task_id=task_id)
            eventually(
                lambda: read_event(sessions, "evt_outage").status is EventStatus.PROCESSING,
                30,
                what="the claim",
            )
            proxy.cut()
            # The attempt fails on the database and the task schedules its own retry.
            eventually(
                lambda: "database unavailable" in (tmp_path / "worker.log").read_text(),
                30,
                what="the worker to meet the outage",
            )
            simulator.set_faults(slow_ratio=0.0)
            proxy.restore()
            eventually(
                lambda: read_event(sessions, "evt_outage").status is EventStatus.PROCESSED,
                60,
                what="the event to be processed",
            )

    event = read_event(sessions, "evt_outage")
    assert event.attempts == 1
    assert attempt_history(sessions, "evt_outage") == [(1, AttemptOutcome.PROCESSED)]
    with sessions() as session:
        assert len(session.scalars(select(GenerationOutput)).all()) == 1
