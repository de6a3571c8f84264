"""An app that knows only the results API: it follows the feed and downloads every file.

Everything is real: the simulator delivers webhooks to gunicorn, a Celery worker stores the
results (in file storage, or in object storage on moto's S3 server, where the app follows
the redirect to a signed URL), and generations keep being created and finishing while the
app walks the feed from an empty cursor. In the end the app holds every finished
generation's files, byte-identical to what the simulator serves.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from rivyahooks_foundation.settings import Settings
from rivyahooks_simulator.config import Faults, SimConfig
from rivyahooks_simulator.content import result_bytes_sha256
from rivyahooks_simulator.server import Simulator
from tests.conftest import SECRET
from tests.support.processes import celery_worker, gunicorn, own_redis_database, relay

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

TOKEN = "follower-token-0123456789"
WAVES = 5
PER_WAVE = 8
OUTPUT_BYTES = 48 * 1024
DEADLINE_SECONDS = 90
REDIS_DB = 12


class FollowingApp:
    """What a downstream app does: store the cursor, apply entries as upserts, fetch files."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=40,
        )
        self.cursor = ""
        self.documents: dict[str, dict[str, Any]] = {}
        self.files: dict[tuple[str, int], bytes] = {}
        self.pages = 0

    def step(self) -> None:
        """Read one page of the feed (waiting up to 2 s for a change) and fetch new files."""
        answer = self.http.get(
            "/results/feed", params={"after": self.cursor, "limit": 7, "wait": 2}
        )
        assert answer.status_code == 200, answer.text
        page = answer.json()
        for entry in page["data"]:
            self.documents[entry["task_id"]] = entry
            for output in entry["outputs"]:
                key = (entry["task_id"], output["index"])
                if key not in self.files:
                    self.files[key] = self.download(output)
        self.cursor = page["next_cursor"]
        self.pages += 1

    def download(self, output: dict[str, Any]) -> bytes:
        # A signed URL carries its own authority: the bearer token must not go to the store.
        answer = self.http.get(output["url"])
        if answer.status_code == 302:
            answer = httpx.get(answer.headers["Location"], timeout=30)
        assert answer.status_code == 200, answer.text
        assert hashlib.sha256(answer.content).hexdigest() == output["sha256"]
        return answer.content

    def close(self) -> None:
        self.http.close()


def test_an_app_following_the_feed_ends_with_every_file(
    postgres_url: str, redis_url: str, postgres_engine: object, tmp_path: Path, storage_url: str
) -> None:
    config = SimConfig(
        queued_seconds=0.1,
        processing_seconds=0.3,
        failure_ratio=0.15,
        outputs=2,
        output_bytes=OUTPUT_BYTES,
    )
    with Simulator(config=config, faults=Faults(duplicate_ratio=0.2), seed=7).start() as sim:
        settings = Settings(
            database_url=postgres_url,
            broker_url=own_redis_database(redis_url, REDIS_DB),
            webhook_secrets=(SECRET,),
            storage_url=storage_url,
            rivya_api_base=sim.url,
            rivya_api_key=sim.api_key,
            download_allowed_hosts=("127.0.0.1",),
            process_retry_base_seconds=0.2,
            results_api_tokens=(TOKEN,),
        )
        with (
            gunicorn(settings, log=tmp_path / "web.log") as web_url,
            relay(settings, log=tmp_path / "relay.log"),
            celery_worker(settings, concurrency=4, log=tmp_path / "worker.log"),
        ):
            sim.register_endpoint(web_url + "/webhooks/rivya", secret=SECRET)
            app = FollowingApp(web_url)
            task_ids: list[str] = []
            seen_finished_before_last_wave = 0
            deadline = time.monotonic() + DEADLINE_SECONDS
            try:
                while True:
                    # A new wave each time the app has read a page: generations are created
                    # and finish while the walk goes on, never only before or after it.
                    if len(task_ids) < WAVES * PER_WAVE:
                        seen_finished_before_last_wave = sum(
                            1 for d in app.documents.values() if d["finished_at"]
                        )
                        task_ids += sim.scenario(PER_WAVE)
                    app.step()
                    if len(task_ids) == WAVES * PER_WAVE and complete(sim, app, task_ids):
                        break
                    assert time.monotonic() < deadline, "the app never caught up"
            finally:
                app.close()
            truth = {g["id"]: g for g in sim.wait_terminal(task_ids, timeout=5)}

    assert app.pages > WAVES
    # The app had seen generations finish before the last wave was even created.
    assert seen_finished_before_last_wave > 0
    succeeded = [t for t, g in truth.items() if g["status"] == "succeeded"]
    failed = [t for t, g in truth.items() if g["status"] == "failed"]
    assert succeeded
    assert failed
    for task_id, generation in truth.items():
        assert app.documents[task_id]["status"] == generation["status"]
    expected_files = {
        (task_id, index): result_bytes_sha256(task_id, index, OUTPUT_BYTES)
        for task_id in succeeded
        for index in range(len(truth[task_id]["result"]["urls"]))
    }
    assert {k: hashlib.sha256(v).hexdigest() for k, v in app.files.items()} == expected_files


def complete(sim: Simulator, app: FollowingApp, task_ids: list[str]) -> bool:
    """Return True when the app holds the final state of every generation."""
    for generation in (sim.generation(t) for t in task_ids):
        document = app.documents.get(generation["id"])
        if document is None or document["status"] != generation["status"]:
            return False
        if generation["status"] == "succeeded":
            urls = generation["result"]["urls"]
            if document["results_stored_at"] is None or len(document["outputs"]) != len(urls):
                return False
        elif generation["status"] != "failed":
            return False
    return True
