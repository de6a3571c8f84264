"""The whole pipeline under faults: simulator -> receiver -> relay -> Redis -> Celery worker.

Everything is real and talks over loopback: the simulator (in this process, real HTTP)
delivers signed webhooks to the receiver served by gunicorn, which stores them in
PostgreSQL; the relay publishes them to Redis; a prefork Celery worker fetches each
generation from the simulator and downloads its results into file storage, or into object
storage on moto's S3 server. Only the outcome is asserted: rows, and files or objects.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from models.db import make_session_factory
from models.events import UNFINISHED_STATUSES, EventStatus, WebhookEvent
from models.generations import Generation, GenerationOutput, GenerationStatus
from rivyahooks_foundation.settings import Settings
from rivyahooks_simulator.config import Faults, SimConfig
from rivyahooks_simulator.content import result_bytes_sha256
from rivyahooks_simulator.server import Simulator
from storage import Storage, open_storage
from storage.files import PARTIAL_DIR
from storage.s3 import STAGING_DIR
from tests.conftest import SECRET
from tests.support.eventually import eventually
from tests.support.processes import celery_worker, gunicorn, own_redis_database, relay
from tests.support.results import sha256_of
from tests.support.s3server import S3Server

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

GENERATIONS = 200
# Large enough for a multipart upload of three parts; the cut fault stops it after one.
LARGE_GENERATIONS = 6
LARGE_BYTES = 11 * 1024 * 1024
PART_BYTES = 5 * 1024 * 1024
DEADLINE_SECONDS = 90
REDIS_DB = 13


def pipeline_settings(
    postgres_url: str, redis_url: str, sim: Simulator, tmp_path: Path, **changes: object
) -> Settings:
    """Return settings for the receiver and worker processes of these tests."""
    settings = Settings(
        database_url=postgres_url,
        broker_url=own_redis_database(redis_url, REDIS_DB),
        webhook_secrets=(SECRET,),
        storage_url=f"file://{tmp_path / 'results'}",
        rivya_api_base=sim.url,
        rivya_api_key=sim.api_key,
        rivya_http_timeout_seconds=10.0,
        download_allowed_hosts=("127.0.0.1",),
        # Short waits between attempts keep the run short; the bounds stay the defaults'.
        process_retry_base_seconds=0.2,
    )
    return settings.replace(**changes)


def wait_until_settled(
    sessions: sessionmaker[Session], expected_events: int, timeout: float
) -> None:
    """Wait until `expected_events` events are stored and none is unfinished."""
    seen: list[tuple[int, int]] = []

    def settled() -> bool:
        with sessions() as session:
            total = session.scalar(select(func.count()).select_from(WebhookEvent)) or 0
            unfinished = session.scalar(
                select(func.count())
                .select_from(WebhookEvent)
                .where(WebhookEvent.status.in_(UNFINISHED_STATUSES))
            )
        seen.append((total, unfinished or 0))
        return total == expected_events and unfinished == 0

    eventually(settled, timeout, interval=0.25, what=f"{expected_events} events to settle")


def stored_keys(storage_url: str, storage: Storage, request: pytest.FixtureRequest) -> list[str]:
    """Return every final key in the storage; fail if anything is left in staging."""
    if storage_url.startswith("file://"):
        root = Path(storage_url.removeprefix("file://"))
        assert list((root / PARTIAL_DIR).iterdir()) == []
        files = [p for p in root.rglob("*") if p.is_file() and PARTIAL_DIR not in p.parts]
        return [str(p.relative_to(root)) for p in files]
    s3: S3Server = request.getfixturevalue("s3")
    assert s3.incomplete_uploads() == []
    keys = s3.keys("results/")
    assert [k for k in keys if k.startswith(f"results/{STAGING_DIR}")] == []
    return [k.removeprefix("results/") for k in keys]


def test_two_hundred_generations_under_faults_end_stored_exactly_once(
    postgres_url: str,
    redis_url: str,
    postgres_engine: Engine,
    tmp_path: Path,
    storage_url: str,
    request: pytest.FixtureRequest,
) -> None:
    config = SimConfig(
        queued_seconds=0.05,
        processing_seconds=0.1,
        failure_ratio=0.1,
        outputs=2,
        output_bytes=32 * 1024,
        delivery_backoff_seconds=0.2,
    )
    faults = Faults(
        duplicate_ratio=0.25,
        reorder_ratio=0.10,
        delay_max=0.5,
        # The simulator injects 5xx on every API call; a worker's API calls are the
        # generation status fetches, so these all land on them.
        api_error_ratio=0.10,
        retry_after_seconds=0,
        cut_download_ratio=0.05,
        expire_early_ratio=0.05,
    )
    sessions = make_session_factory(postgres_engine)
    with Simulator(config=config, faults=faults, seed=20260511).start() as sim:
        settings = pipeline_settings(
            postgres_url,
            redis_url,
            sim,
            tmp_path,
            storage_url=storage_url,
            storage_part_bytes=PART_BYTES,
        )
        with (
            gunicorn(settings, log=tmp_path / "web.log") as web_url,
            relay(settings, log=tmp_path / "relay.log"),
            celery_worker(settings, concurrency=4, log=tmp_path / "worker.log"),
        ):
            sim.register_endpoint(web_url + "/webhooks/rivya", secret=settings.webhook_secrets[0])
            # Half the generations with one output and half with two.
            task_ids = sim.scenario(GENERATIONS // 2, outputs=1) + sim.scenario(
                GENERATIONS // 2, outputs=2
            )
            expected = {g["id"]: g for g in sim.wait_terminal(task_ids, timeout=30)}
            sim.wait_deliveries_idle(timeout=DEADLINE_SECONDS)
            wait_until_settled(sessions, GENERATIONS, DEADLINE_SECONDS)
            # Then a few large results, the first of them cut half-way: with object storage
            # that is a multipart upload stopped after its first part. (No early expiry now:
            # an expired URL would take the forced cut without sending a byte.)
            sim.set_faults(expire_early_ratio=0, next_download_faults=["cut"])
            large = sim.scenario(
                LARGE_GENERATIONS, outcome="succeeded", outputs=1, output_bytes=LARGE_BYTES
            )
            expected |= {g["id"]: g for g in sim.wait_terminal(large, timeout=30)}
            task_ids += large
            sim.wait_deliveries_idle(timeout=DEADLINE_SECONDS)
            wait_until_settled(sessions, len(task_ids), DEADLINE_SECONDS)
        summary = sim.summary()
        requests = sim.requests()

    # The faults did happen, or this test proves nothing.
    faulted = {r["fault"] for r in requests if r["fault"]}
    assert {"api_error", "cut"} <= faulted, faulted
    assert any(r["fault"] == "cut" and r["path"].split("/")[2] in large for r in requests)
    assert any(r["status"] == 410 for r in requests if r["path"].startswith("/results/"))
    assert summary["deliveries"]["duplicated"] > 0
    assert summary["deliveries"]["failed"] == 0

    storage = open_storage(settings)
    with sessions() as session:
        events = session.scalars(select(WebhookEvent)).all()
        generations = {g.task_id: g for g in session.scalars(select(Generation))}
        outputs = session.scalars(select(GenerationOutput)).all()

    assert sorted(e.task_id or "" for e in events) == sorted(task_ids)
    assert [e for e in events if e.status is not EventStatus.PROCESSED] == []
    assert set(generations) == set(task_ids)

    by_task: dict[str, list[GenerationOutput]] = {}
    for output in outputs:
        by_task.setdefault(output.task_id, []).append(output)
    succeeded = failed = 0
    for task_id, want in expected.items():
        got = generations[task_id]
        if want["status"] == "succeeded":
            succeeded += 1
            assert got.status is GenerationStatus.SUCCEEDED
            assert got.results_stored_at is not None
            stored = sorted(by_task.get(task_id, []), key=lambda o: o.index)
            count = len(want["result"]["urls"])
            assert [o.index for o in stored] == list(range(count)), task_id
            size = LARGE_BYTES if task_id in large else config.output_bytes
            for output in stored:
                sha256 = result_bytes_sha256(task_id, output.index, size)
                assert output.sha256 == sha256
                assert output.size_bytes == size
                assert sha256_of(storage, output.storage_key) == sha256
        else:
            failed += 1
            assert got.status is GenerationStatus.FAILED
            want_code = (want["error"] or {}).get("code") or "unknown"
            assert got.error_code == want_code, task_id
            assert task_id not in by_task
    assert succeeded > 0
    assert failed > 0
    # Exactly one file per stored output: nothing stored twice under another key, nothing
    # partial, no staging object nor incomplete multipart upload left behind.
    assert sorted(stored_keys(storage_url, storage, request)) == sorted(
        o.storage_key for o in outputs
    )
