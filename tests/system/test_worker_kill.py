"""A worker killed in the middle of a download: the next worker finishes the job cleanly.

How recovery happens, without any operator:

1. The event is `processing` under the dead worker's claim, with one attempt counted. Its
   lease (PROCESS_TIME_LIMIT_SECONDS plus a grace, short here) lapses.
2. The sweeper (`events.sweep`, run by beat) finds the lapsed lease, records the attempt as
   `expired` and makes the event `failed`, due at once; the relay publishes it again.
3. Independently, the killed worker never acknowledged its message (tasks are `acks_late`):
   the Redis transport puts it back on the queue some time after the visibility timeout
   (kombu scans for such messages only every 100 s or so). Whichever copy comes first
   claims the event (a claim takes over a lapsed lease); a later one finds it processed.
4. The dead worker's partial file (or, with object storage, its incomplete multipart
   upload) names its host and pid. The next staging of the same output removes those of
   dead writers, and the sweeper removes them too, so nothing is left in staging.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from models.db import make_session_factory
from models.events import AttemptOutcome, EventAttempt, EventStatus, WebhookEvent
from models.generations import GenerationOutput
from rivyahooks_foundation.settings import Settings
from rivyahooks_simulator.config import Faults, SimConfig
from rivyahooks_simulator.content import result_bytes_sha256
from rivyahooks_simulator.server import Simulator
from storage import open_storage
from storage.files import PARTIAL_DIR
from storage.s3 import STAGING_DIR
from tests.conftest import SECRET
from tests.support.eventually import eventually
from tests.support.processes import celery_worker, gunicorn, own_redis_database, relay
from tests.support.results import sha256_of
from tests.support.s3server import S3Server

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

# Large enough that the download takes a good fraction of a second on loopback.
OUTPUT_BYTES = 512 * 1024 * 1024
# moto keeps objects in memory and takes a few seconds for this many 5 MiB parts.
OBJECT_BYTES = 96 * 1024 * 1024
PART_BYTES = 5 * 1024 * 1024
# An attempt may run TIME_LIMIT_SECONDS; its lease lapses soon after, inside the window.
VISIBILITY_SECONDS = 20
TIME_LIMIT_SECONDS = 12
REDIS_DB = 14


def wait_for_partial(partials: Path, timeout: float) -> Path:
    """Return the first partial file that has bytes but not all of them."""

    def in_progress() -> Path | None:
        for path in partials.glob("*.part"):
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                continue
            if 0 < size < OUTPUT_BYTES:
                return path
        return None

    return eventually(in_progress, timeout, interval=0.002, what="a download in progress")


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
        process_time_limit_seconds=TIME_LIMIT_SECONDS,
        sweep_interval_seconds=2,
    ).replace(**changes)


def test_a_download_killed_midway_completes_on_the_next_worker(
    postgres_url: str, redis_url: str, postgres_engine: Engine, tmp_path: Path
) -> None:
    sessions = make_session_factory(postgres_engine)
    with one_result_simulator(OUTPUT_BYTES, seed=1) as sim:
        settings = kill_settings(postgres_url, redis_url, sim, f"file://{tmp_path / 'results'}")
        partials = settings.storage_root() / PARTIAL_DIR
        with (
            gunicorn(settings, log=tmp_path / "web.log") as web_url,
            relay(settings, log=tmp_path / "relay.log"),
        ):
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

                def processed() -> bool:
                    with sessions() as session:
                        status = session.scalars(select(WebhookEvent.status)).one()
                    return status is EventStatus.PROCESSED

                eventually(processed, 4 * VISIBILITY_SECONDS, interval=0.25, what="processed")

    with sessions() as session:
        outputs = session.scalars(select(GenerationOutput)).all()
        event = session.scalars(select(WebhookEvent)).one()
    assert event.status is EventStatus.PROCESSED
    assert event.attempts >= 2
    with sessions() as session:
        attempts = session.scalars(select(EventAttempt).order_by(EventAttempt.number)).all()
    assert attempts[0].outcome is AttemptOutcome.EXPIRED
    assert attempts[-1].outcome is AttemptOutcome.PROCESSED
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
        with (
            gunicorn(settings, log=tmp_path / "web.log") as web_url,
            relay(settings, log=tmp_path / "relay.log"),
        ):
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
