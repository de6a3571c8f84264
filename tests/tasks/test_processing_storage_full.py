"""Processing on a really full disk: a tmpfs too small for the result, in a child process.

The child runs `process_event` with its results on the tmpfs (tests/support/fulldisk.py) and
reports what it left there and what it counted; the rows are read here.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.wrappers import Request, Response

from models.events import EventStatus
from rivyahooks_foundation.settings import Settings
from rivyahooks_simulator.config import Faults, SimConfig
from rivyahooks_simulator.server import Simulator
from tests.support.attempts import generation, settings_for
from tests.support.fulldisk import run_on_full_disk
from tests.support.httpserver import serving
from tests.support.inbox import add_event, read_event

KiB, MiB = 1024, 1024 * 1024
# A full disk must not retry within seconds (it burnt every attempt in minutes): the next
# attempt is most of a minute away, and the attempt is not counted.
LONG_WAIT = dt.timedelta(seconds=45)

PROCESS_ON_THE_DISK = """
import json, sys
from prometheus_client import REGISTRY
from rivyahooks_foundation.settings import Settings
from tasks.processing import process_event
from tasks.runtime import Runtime

runtime = Runtime(Settings.from_env())
outcome = process_event(runtime, sys.argv[1])
runtime.close()
root = runtime.settings.storage_root()
print(json.dumps({
    "status": outcome.status.value if outcome else None,
    "files": sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()),
    "storage_full": REGISTRY.get_sample_value("rivyahooks_storage_full_total"),
}))
"""


def process_on_full_disk(settings: Settings, disk: Path, event_id: str) -> dict[str, Any]:
    """Process the event in a child whose results are on a 1 MiB tmpfs; return its report."""
    env = settings.replace(storage_url=f"file://{disk}").to_env()
    done = run_on_full_disk(disk, "1m", PROCESS_ON_THE_DISK, event_id, env=env)
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def assert_retried_later_for_a_full_disk(
    sessions: sessionmaker[Session], event_id: str, report: dict[str, Any], why: str
) -> None:
    assert report["status"] == "failed"
    assert report["files"] == []  # no partial file, no stored file
    assert report["storage_full"] == 1.0
    event = read_event(sessions, event_id)
    assert event.status is EventStatus.FAILED
    assert event.last_error is not None
    assert event.last_error.startswith("storage full: download 0: "), event.last_error
    assert why in event.last_error
    assert event.next_attempt_at is not None
    assert event.finished_at is not None
    assert event.next_attempt_at - event.finished_at >= LONG_WAIT
    assert event.attempts == 0  # waiting for room uses up none of PROCESS_MAX_ATTEMPTS


@pytest.fixture
def big_output_simulator(request: pytest.FixtureRequest) -> Iterator[Simulator]:
    config = SimConfig(
        queued_seconds=0, processing_seconds=0, outputs=1, output_bytes=request.param
    )
    with Simulator(config=config, faults=Faults(), seed=11).start() as sim:
        yield sim


@pytest.mark.parametrize(
    ("big_output_simulator", "min_free_bytes"),
    [
        pytest.param(2 * MiB, 0, id="larger-than-the-disk"),
        pytest.param(512 * KiB, 768 * KiB, id="fits-but-would-leave-too-little"),
    ],
    indirect=["big_output_simulator"],
)
def test_a_result_the_disk_has_no_room_for_is_not_started_and_retried_minutes_later(
    big_output_simulator: Simulator,
    settings: Settings,
    sessions: sessionmaker[Session],
    tmp_path: Path,
    min_free_bytes: int,
) -> None:
    sim = big_output_simulator
    (task_id,) = sim.scenario(1, outcome="succeeded")
    sim.wait_terminal([task_id])
    add_event(sessions, "evt_full", task_id=task_id)
    settings = settings_for(settings, sim.url, sim.api_key).replace(
        storage_min_free_bytes=min_free_bytes
    )

    report = process_on_full_disk(settings, tmp_path / "disk", "evt_full")

    # Refused at the headers, before a byte was written.
    assert_retried_later_for_a_full_disk(sessions, "evt_full", report, "bytes free")


def test_a_disk_filling_mid_download_ends_the_attempt_as_storage_full(
    settings: Settings, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    # No Content-Length (the simulator always sends one): nothing to check beforehand, so
    # the kernel's ENOSPC in the middle of the body is what ends the download.
    def answer(request: Request) -> Response:
        if request.path.startswith("/results/"):
            return Response((b"x" * (64 * KiB) for _ in range(32)), mimetype="image/png")
        return generation("task_unannounced", [f"{request.host_url}results/0"])

    add_event(sessions, "evt_enospc", task_id="task_unannounced")
    with serving(answer) as url:
        settings = settings_for(settings, url).replace(storage_min_free_bytes=0)
        report = process_on_full_disk(settings, tmp_path / "disk", "evt_enospc")

    assert_retried_later_for_a_full_disk(sessions, "evt_enospc", report, "No space left on device")
