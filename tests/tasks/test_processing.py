"""Processing one event against the simulator over real HTTP, by calling the plain function."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.wrappers import Request, Response

from models.db import make_engine, make_session_factory
from models.events import AttemptOutcome, EventAttempt, EventStatus
from models.generations import Generation, GenerationOutput, GenerationStatus
from models.migrate import upgrade
from rivyahooks_foundation.settings import Settings
from rivyahooks_simulator.config import Faults, SimConfig
from rivyahooks_simulator.content import result_bytes_sha256
from rivyahooks_simulator.server import Simulator
from storage.files import FileStorage
from tasks.outcomes import DatabaseUnavailable, Outcome
from tasks.processing import process_event
from tasks.runtime import Runtime
from tests.support import services
from tests.support.attempts import (
    generation,
    one_output_simulator,
    rivya_answering,
    settings_for,
)
from tests.support.eventually import eventually
from tests.support.failover import set_read_only
from tests.support.inbox import add_event, attempt_history, read_event
from tests.support.processes import celery_worker, own_redis_database, relay
from tests.support.tcpproxy import tcp_proxy

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
        # Retries fall due within milliseconds: the tests run the next attempt themselves.
        process_retry_base_seconds=0.01,
    )


@pytest.fixture
def runtime(proc_settings: Settings) -> Iterator[Runtime]:
    runtime = Runtime(proc_settings)
    yield runtime
    runtime.close()


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
    simulator: Simulator, runtime: Runtime, sessions: sessionmaker[Session]
) -> None:
    (task_id,) = simulator.scenario(1, outcome="succeeded")
    simulator.wait_terminal([task_id])
    add_event(sessions, "evt_1", task_id=task_id)

    outcome = process_event(runtime, "evt_1")

    assert outcome is not None
    assert outcome.status is EventStatus.PROCESSED
    stored = outputs(sessions, task_id)
    assert [o.index for o in stored] == [0, 1]
    storage = FileStorage(runtime.settings.storage_root())
    for output in stored:
        assert output.sha256 == result_bytes_sha256(task_id, output.index, OUTPUT_BYTES)
        assert output.size_bytes == OUTPUT_BYTES
        assert storage.size(output.storage_key) == OUTPUT_BYTES
    assert read_event(sessions, "evt_1").status is EventStatus.PROCESSED
    with sessions() as session:
        generation = session.scalars(select(Generation)).one()
        assert generation.status is GenerationStatus.SUCCEEDED
        assert generation.results_stored_at is not None


def test_a_second_event_for_the_same_generation_downloads_nothing(
    simulator: Simulator, runtime: Runtime, sessions: sessionmaker[Session]
) -> None:
    (task_id,) = simulator.scenario(1, outcome="succeeded")
    simulator.wait_terminal([task_id])
    add_event(sessions, "evt_a", task_id=task_id)
    add_event(sessions, "evt_b", task_id=task_id)
    process_event(runtime, "evt_a")
    simulator.reset_requests()

    outcome = process_event(runtime, "evt_b")

    assert outcome is not None
    assert outcome.status is EventStatus.PROCESSED
    assert simulator.requests("/results/") == []
    assert len(outputs(sessions, task_id)) == 2


def test_concurrent_events_for_one_generation_give_one_set_of_outputs(
    simulator: Simulator, runtime: Runtime, sessions: sessionmaker[Session]
) -> None:
    (task_id,) = simulator.scenario(1, outcome="succeeded")
    simulator.wait_terminal([task_id])
    ids = [add_event(sessions, f"evt_{n}", task_id=task_id) for n in range(4)]
    barrier = threading.Barrier(len(ids))

    def run(event_id: str) -> None:
        barrier.wait()
        process_event(runtime, event_id)

    threads = [threading.Thread(target=run, args=(i,)) for i in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert [o.index for o in outputs(sessions, task_id)] == [0, 1]
    assert {read_event(sessions, i).status for i in ids} == {EventStatus.PROCESSED}
    storage_root = Path(runtime.settings.storage_root())
    files = [p for p in storage_root.rglob("*") if p.is_file()]
    assert len(files) == 2


def test_failed_generation_records_its_error(
    simulator: Simulator, runtime: Runtime, sessions: sessionmaker[Session]
) -> None:
    (task_id,) = simulator.scenario(1, outcome="failed")
    (document,) = simulator.wait_terminal([task_id])
    add_event(sessions, "evt_f", task_id=task_id)

    outcome = process_event(runtime, "evt_f")

    assert outcome is not None
    assert outcome.status is EventStatus.PROCESSED
    with sessions() as session:
        generation = session.scalars(select(Generation)).one()
    assert generation.status is GenerationStatus.FAILED
    assert generation.error_code == document["error"]["code"]
    assert generation.final_credits == 0
    assert outputs(sessions, task_id) == []


def test_unknown_task_is_ignored_with_the_reason(
    runtime: Runtime, sessions: sessionmaker[Session]
) -> None:
    add_event(sessions, "evt_x", task_id="task_does_not_exist")
    outcome = process_event(runtime, "evt_x")
    assert outcome is not None
    assert outcome.status is EventStatus.IGNORED
    row = read_event(sessions, "evt_x")
    assert row.status is EventStatus.IGNORED
    assert row.status_reason is not None
    assert row.status_reason.startswith("not_found")


def test_expired_url_is_refetched(
    simulator: Simulator, runtime: Runtime, sessions: sessionmaker[Session]
) -> None:
    (task_id,) = simulator.scenario(1, outcome="succeeded")
    simulator.wait_terminal([task_id])
    add_event(sessions, "evt_e", task_id=task_id)
    # Every URL minted from now on is already expired, then fresh ones again.
    simulator.set_faults(expire_early_ratio=1.0)
    first = simulator.generation(task_id)
    simulator.set_faults(expire_early_ratio=0.0)
    assert first["result"]["urls"]

    outcome = process_event(runtime, "evt_e")

    assert outcome is not None
    assert outcome.status is EventStatus.PROCESSED
    assert len(outputs(sessions, task_id)) == 2


def next_attempt(runtime: Runtime, event_id: str) -> Outcome:
    """Run the event's next attempt as soon as it falls due; return its outcome."""
    return eventually(lambda: process_event(runtime, event_id), 5, what=f"{event_id} to be due")


def test_download_cut_short_is_retried_and_never_stored(
    simulator: Simulator, runtime: Runtime, sessions: sessionmaker[Session]
) -> None:
    (task_id,) = simulator.scenario(1, outcome="succeeded")
    simulator.wait_terminal([task_id])
    add_event(sessions, "evt_c", task_id=task_id)
    simulator.set_faults(cut_download_ratio=1.0)

    first = process_event(runtime, "evt_c")

    assert first is not None
    assert first.status is EventStatus.FAILED
    row = read_event(sessions, "evt_c")
    assert row.status is EventStatus.FAILED
    assert row.last_error
    assert row.next_attempt_at is not None
    assert outputs(sessions, task_id) == []
    storage = FileStorage(runtime.settings.storage_root())
    assert [p for p in storage.root.rglob("*") if p.is_file()] == []

    simulator.set_faults(cut_download_ratio=0.0)
    outcome = next_attempt(runtime, "evt_c")
    assert outcome.status is EventStatus.PROCESSED
    assert len(outputs(sessions, task_id)) == 2
    with sessions() as session:
        attempts = session.scalars(
            select(EventAttempt)
            .where(EventAttempt.event_id == "evt_c")
            .order_by(EventAttempt.number)
        ).all()
    assert [(a.number, a.outcome) for a in attempts] == [
        (1, AttemptOutcome.FAILED),
        (2, AttemptOutcome.PROCESSED),
    ]
    assert attempts[0].error == row.last_error
    assert attempts[0].retry_at == row.next_attempt_at
    assert all(a.finished_at is not None and a.worker for a in attempts)


def test_attempts_are_bounded_then_dead(
    simulator: Simulator,
    proc_settings: Settings,
    sessions: sessionmaker[Session],
    caplog: pytest.LogCaptureFixture,
) -> None:
    (task_id,) = simulator.scenario(1, outcome="succeeded")
    simulator.wait_terminal([task_id])
    add_event(sessions, "evt_d", task_id=task_id)
    simulator.set_faults(cut_download_ratio=1.0)
    runtime = Runtime(proc_settings.replace(process_max_attempts=2))
    try:
        first = process_event(runtime, "evt_d")
        assert first is not None
        assert first.status is EventStatus.FAILED
        outcome = next_attempt(runtime, "evt_d")
    finally:
        runtime.close()

    assert outcome.status is EventStatus.DEAD
    row = read_event(sessions, "evt_d")
    assert row.status is EventStatus.DEAD
    assert row.attempts == 2
    assert "gave up after 2 attempts" in (row.status_reason or "")
    # An operator's alerting reads the log: the death is an error line with its reason.
    (line,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert "evt_d dead: gave up after 2 attempts" in line.getMessage()


# --- answers no simulator gives ------------------------------------------------------------


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


# --- database outages ----------------------------------------------------------------------


@pytest.fixture
def single_output_simulator() -> Iterator[Simulator]:
    with one_output_simulator() as sim:
        yield sim


@pytest.mark.postgres
def test_a_database_outage_mid_attempt_resumes_the_same_claim(
    postgres_url: str, settings: Settings, single_output_simulator: Simulator, postgres_engine: Any
) -> None:
    from models.db import make_session_factory

    sessions = make_session_factory(postgres_engine)
    (task_id,) = single_output_simulator.scenario(1, outcome="succeeded")
    single_output_simulator.wait_terminal([task_id])
    add_event(sessions, "evt_db", task_id=task_id)
    # Rivya answers slowly: the database goes away while the attempt waits for it.
    single_output_simulator.set_faults(slow_ratio=1.0, slow_seconds=1.0)
    target = urlsplit(services.POSTGRES_ADMIN_URL)
    with tcp_proxy(target.hostname or "127.0.0.1", target.port or 5432) as proxy:
        proxied = make_url(postgres_url).set(host="127.0.0.1", port=proxy.port)
        runtime = Runtime(
            settings_for(
                settings.replace(database_url=proxied.render_as_string(hide_password=False)),
                single_output_simulator.url,
                single_output_simulator.api_key,
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
            single_output_simulator.set_faults(slow_ratio=0.0)
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


def _worker_settings(
    postgres_url: str, redis_url: str, simulator: Simulator, tmp_path: Path
) -> Settings:
    """Settings of a real worker on PostgreSQL, a Redis database of its own and `simulator`."""
    return settings_for(
        Settings(
            database_url=postgres_url,
            broker_url=own_redis_database(redis_url, 10),
            storage_url=f"file://{tmp_path / 'results'}",
        ),
        simulator.url,
        simulator.api_key,
    )


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
def test_a_real_worker_rides_out_a_database_outage_without_losing_the_attempt(
    postgres_url: str,
    redis_url: str,
    postgres_engine: Any,
    single_output_simulator: Simulator,
    tmp_path: Path,
) -> None:
    from models.db import make_session_factory

    sessions = make_session_factory(postgres_engine)
    settings = _worker_settings(postgres_url, redis_url, single_output_simulator, tmp_path)
    (task_id,) = single_output_simulator.scenario(1, outcome="succeeded")
    single_output_simulator.wait_terminal([task_id])
    # Rivya answers slowly: the database goes away while the attempt waits for it.
    single_output_simulator.set_faults(slow_ratio=1.0, slow_seconds=1.0)
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
            single_output_simulator.set_faults(slow_ratio=0.0)
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


@pytest.fixture
def own_postgres_url() -> Iterator[str]:
    """A migrated PostgreSQL database of this test alone: it may be made read-only."""
    with services.new_postgres_database("rivyahooks_failover") as url:
        upgrade(url)
        yield url


@pytest.mark.postgres
def test_a_read_only_database_mid_attempt_is_retried_later_not_recorded_as_a_failure(
    own_postgres_url: str, settings: Settings, single_output_simulator: Simulator
) -> None:
    engine = make_engine(own_postgres_url)
    sessions = make_session_factory(engine)
    (task_id,) = single_output_simulator.scenario(1, outcome="succeeded")
    single_output_simulator.wait_terminal([task_id])
    add_event(sessions, "evt_standby", task_id=task_id)
    # Rivya answers slowly: the failover happens while the attempt waits for it.
    single_output_simulator.set_faults(slow_ratio=1.0, slow_seconds=1.0)
    runtime = Runtime(
        settings_for(
            settings.replace(database_url=own_postgres_url),
            single_output_simulator.url,
            single_output_simulator.api_key,
        )
    )
    raised: list[BaseException] = []

    def attempt() -> None:
        try:
            process_event(runtime, "evt_standby")
        except BaseException as exc:
            raised.append(exc)

    worker = threading.Thread(target=attempt)
    try:
        worker.start()
        eventually(
            lambda: read_event(sessions, "evt_standby").status is EventStatus.PROCESSING,
            10,
            what="claim",
        )
        set_read_only(own_postgres_url, True)
        worker.join(30)
        (error,) = raised
        # Not InternalError escaping, not a recorded failure: the task retries later.
        assert isinstance(error, DatabaseUnavailable), repr(error)
        # A claim on the standby cannot be made either: also retried later.
        with pytest.raises(DatabaseUnavailable):
            process_event(runtime, "evt_other")

        set_read_only(own_postgres_url, False)
        claimed = read_event(sessions, "evt_standby")
        assert claimed.status is EventStatus.PROCESSING
        assert claimed.last_error is None
        assert error.resume == claimed.claim_token
        single_output_simulator.set_faults(slow_ratio=0.0)
        outcome = process_event(runtime, "evt_standby", resume=error.resume)
    finally:
        runtime.close()

    assert outcome is not None
    assert outcome.status is EventStatus.PROCESSED
    event = read_event(sessions, "evt_standby")
    assert (event.status, event.attempts) == (EventStatus.PROCESSED, 1)
    assert attempt_history(sessions, "evt_standby") == [(1, AttemptOutcome.PROCESSED)]
    engine.dispose()


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
def test_a_real_worker_notices_a_recovered_database_within_seconds(
    postgres_url: str,
    redis_url: str,
    postgres_engine: Any,
    single_output_simulator: Simulator,
    tmp_path: Path,
) -> None:
    sessions = make_session_factory(postgres_engine)
    settings = _worker_settings(postgres_url, redis_url, single_output_simulator, tmp_path)
    (task_id,) = single_output_simulator.scenario(1, outcome="succeeded")
    single_output_simulator.wait_terminal([task_id])
    single_output_simulator.set_faults(slow_ratio=1.0, slow_seconds=1.0)
    worker_log = tmp_path / "worker.log"
    target = urlsplit(services.POSTGRES_ADMIN_URL)
    with tcp_proxy(target.hostname or "127.0.0.1", target.port or 5432) as proxy:
        proxied = make_url(postgres_url).set(host="127.0.0.1", port=proxy.port)
        worker_settings = settings.replace(
            database_url=proxied.render_as_string(hide_password=False)
        )
        with (
            relay(settings, log=tmp_path / "relay.log"),
            celery_worker(worker_settings, concurrency=1, log=worker_log),
        ):
            add_event(sessions, "evt_long_outage", task_id=task_id)
            eventually(
                lambda: read_event(sessions, "evt_long_outage").status is EventStatus.PROCESSING,
                30,
                what="the claim",
            )
            proxy.cut()
            # The outage outlasts several retries: a doubling delay would by now wait
            # 16 s or more before looking again.
            eventually(
                lambda: worker_log.read_text().count("database unavailable (") >= 6,
                90,
                what="six retries of the task during the outage",
            )
            single_output_simulator.set_faults(slow_ratio=0.0)
            proxy.restore()
            eventually(
                lambda: read_event(sessions, "evt_long_outage").status is EventStatus.PROCESSED,
                14,
                what="the event to be processed within seconds of the database's return",
            )

    event = read_event(sessions, "evt_long_outage")
    assert event.attempts == 1
    assert attempt_history(sessions, "evt_long_outage") == [(1, AttemptOutcome.PROCESSED)]


def test_an_encrypted_event_is_processed_as_before(
    simulator: Simulator, proc_settings: Settings, sessions: sessionmaker[Session]
) -> None:
    # The worker reads the event's row (never its body): keys configured, it works as before.
    import os

    from models.db import make_engine, make_session_factory

    keyed = proc_settings.replace(data_encryption_keys=(os.urandom(32),))
    engine = make_engine(keyed.database_url, data_keys=keyed.data_encryption_keys)
    (task_id,) = simulator.scenario(1, outcome="succeeded")
    simulator.wait_terminal([task_id])
    add_event(make_session_factory(engine), "evt_sealed", task_id=task_id, body=b'{"secret": 1}')
    runtime = Runtime(keyed)
    try:
        outcome = process_event(runtime, "evt_sealed")
    finally:
        runtime.close()
        engine.dispose()
    assert outcome is not None
    assert outcome.status is EventStatus.PROCESSED
    assert [o.index for o in outputs(sessions, task_id)] == [0, 1]
