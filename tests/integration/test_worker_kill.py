"""A worker killed in the middle of a download: the next worker finishes the job cleanly.

How recovery happens, without any operator:

1. The killed worker never acknowledged its message (tasks are `acks_late`). The Redis
   transport keeps unacknowledged messages aside and puts them back on the queue once they
   are older than the visibility timeout (TASK_VISIBILITY_TIMEOUT_SECONDS, short here); a
   consuming worker does that while it polls.
2. Independently, the sweeper (`events.sweep`, run by beat) re-enqueues events left
   `processing` for longer than the same window. Whichever comes first runs the task; a
   second copy finds the event processed, or loses the (task_id, index) race harmlessly.
3. The event is `processing` with one attempt counted; processing may start over from that
   state because every step is idempotent.
4. The dead worker's partial file (or, with object storage, its incomplete multipart
   upload) names its host and pid. The next staging of the same output removes those of
   dead writers, and the sweeper removes them too, so nothing is left in staging.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from models.db import make_session_factory
from models.events import EventStatus, WebhookEvent
from models.generations import GenerationOutput
from rivyahooks.rivya.simulator.config import Faults, SimConfig
from rivyahooks.rivya.simulator.content import result_bytes_sha256
from rivyahooks.rivya.simulator.server import Simulator
from rivyahooks.settings import Settings
from storage import open_storage
from storage.files import PARTIAL_DIR
from storage.s3 import STAGING_DIR
from tests.conftest import SECRET
from tests.support.eventually import eventually
from tests.support.processes import celery_worker, gunicorn, own_redis_database
from tests.support.results import sha256_of
from tests.support.s3server import S3Server

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

# Large enough that the download takes a good fraction of a second on loopback.
OUTPUT_BYTES = 512 * 1024 * 1024
# moto keeps objects in memory and takes a few seconds for this many 5 MiB parts.
OBJECT_BYTES = 96 * 1024 * 1024
PART_BYTES = 5 * 1024 * 1024
VISIBILITY_SECONDS = 10
REDIS_DB = 14


def wait_for_partial(partials: Path, timeout: float) -> Path:
    """Return the first partial file that has bytes but not all of them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in partials.glob("*.part"):
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                continue
            if 0 < size < OUTPUT_BYTES:
                return path
        time.sleep(0.002)
    pytest.fail("no download was seen in progress")


def one_result_simulator(size: int, seed: int) -> Simulator:
    """Return a simulator whose generations succeed at once with one result of `size` bytes."""
    config = SimConfig(
        queued_seconds=0, processing_seconds=0.05, failure_ratio=0, outputs=1, output_bytes=size
    )
    return Simulator(config=config, faults=Faults(), seed=seed).start()


def kill_settings(
    postgres_url: str, redis_url: str, sim: Simulator, storage_url: str, **changes: object
) -> Settings:
    """Return the settings of these tests: a short visibility window, a frequent sweep."""
    return Settings(
        database_url=postgres_url,
        broker_url=own_redis_database(redis_url, REDIS_DB),
        webhook_secrets=(SECRET,),
        storage_url=storage_url,
        rivya_api_base=sim.url,
        rivya_api_key=sim.api_key,
        download_allowed_hosts=("127.0.0.1",),
        task_visibility_timeout_seconds=VISIBILITY_SECONDS,
        sweep_interval_seconds=2,
    ).replace(**changes)


def test_a_download_killed_midway_completes_on_the_next_worker(
    postgres_url: str, redis_url: str, postgres_engine: Engine, tmp_path: Path
) -> None:
    sessions = make_session_factory(postgres_engine)
    with one_result_simulator(OUTPUT_BYTES, seed=1) as sim:
        settings = kill_settings(postgres_url, redis_url, sim, f"file://{tmp_path / 'results'}")
        partials = settings.storage_root() / PARTIAL_DIR
        with gunicorn(settings, log=tmp_path / "web.log") as web_url:
            sim.register_endpoint(web_url + "/webhooks/rivya", secret=SECRET)
            with celery_worker(settings, concurrency=1, log=tmp_path / "worker1.log") as first:
                (task_id,) = sim.scenario(1)
                partial = wait_for_partial(partials, timeout=30)
                os.killpg(first.pid, signal.SIGKILL)
                first.wait(10)
            # The killed writer's bytes stay behind, and the event is stuck mid-task.
            assert 0 < partial.stat().st_size < OUTPUT_BYTES
            with sessions() as session:
                event = session.scalars(select(WebhookEvent)).one()
            assert event.status is EventStatus.PROCESSING
            assert event.attempts == 1

            with celery_worker(settings, concurrency=2, beat=True, log=tmp_path / "worker2.log"):
                deadline = time.monotonic() + 4 * VISIBILITY_SECONDS
                while True:
                    with sessions() as session:
                        event = session.scalars(select(WebhookEvent)).one()
                    if event.status is EventStatus.PROCESSED:
                        break
                    assert time.monotonic() < deadline, f"event still {event.status}"
                    time.sleep(0.25)
                # Let a second copy of the message (redelivery and sweep) run out too.
                time.sleep(3)

    with sessions() as session:
        outputs = session.scalars(select(GenerationOutput)).all()
        event = session.scalars(select(WebhookEvent)).one()
    assert event.status is EventStatus.PROCESSED
    assert event.attempts >= 2
    assert [(o.task_id, o.index) for o in outputs] == [(task_id, 0)]
    expected = result_bytes_sha256(task_id, 0, OUTPUT_BYTES)
    (output,) = outputs
    assert output.sha256 == expected
    stored = settings.storage_root() / output.storage_key
    assert stored.stat().st_size == OUTPUT_BYTES
    assert sha256_of(open_storage(settings), output.storage_key) == expected
    assert list(partials.iterdir()) == []
    files = [p for p in settings.storage_root().rglob("*") if p.is_file()]
    assert files == [stored]


def test_an_upload_killed_midway_completes_on_the_next_worker_and_leaves_no_orphan(
    postgres_url: str, redis_url: str, postgres_engine: Engine, tmp_path: Path, s3: S3Server
) -> None:
    sessions = make_session_factory(postgres_engine)
    with one_result_simulator(OBJECT_BYTES, seed=2) as sim:
        settings = kill_settings(
            postgres_url, redis_url, sim, s3.storage_url(), storage_part_bytes=PART_BYTES
        )
        # The worker children inherit the AWS variables that point at the S3 server.
        with gunicorn(settings, log=tmp_path / "web.log") as web_url:
            sim.register_endpoint(web_url + "/webhooks/rivya", secret=SECRET)
            with celery_worker(settings, concurrency=1, log=tmp_path / "worker1.log") as first:
                (task_id,) = sim.scenario(1)
                eventually(s3.incomplete_uploads, 60, "a multipart upload to start", 0.002)
                os.killpg(first.pid, signal.SIGKILL)
                first.wait(10)
            # The killed writer's upload is left incomplete, and the event is stuck mid-task.
            (orphan,) = s3.incomplete_uploads()
            assert orphan.startswith(f"results/{STAGING_DIR}")
            with sessions() as session:
                assert session.scalars(select(WebhookEvent)).one().status is (
                    EventStatus.PROCESSING
                )

            with celery_worker(settings, concurrency=2, beat=True, log=tmp_path / "worker2.log"):

                def processed() -> bool:
                    with sessions() as session:
                        event = session.scalars(select(WebhookEvent)).one()
                    return event.status is EventStatus.PROCESSED

                eventually(processed, 6 * VISIBILITY_SECONDS, "the event to be processed", 0.25)
                eventually(
                    lambda: s3.incomplete_uploads() == [] and not staging_keys(s3),
                    4 * VISIBILITY_SECONDS,
                    "staging to be empty",
                    0.25,
                )

    with sessions() as session:
        outputs = session.scalars(select(GenerationOutput)).all()
    assert [(o.task_id, o.index) for o in outputs] == [(task_id, 0)]
    (output,) = outputs
    expected = result_bytes_sha256(task_id, 0, OBJECT_BYTES)
    assert output.sha256 == expected
    assert sha256_of(open_storage(settings), output.storage_key) == expected
    assert s3.keys() == [f"results/{output.storage_key}"]
    assert s3.incomplete_uploads() == []


def staging_keys(s3: S3Server) -> list[str]:
    return s3.keys(f"results/{STAGING_DIR}")
