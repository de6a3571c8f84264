"""Every role at once, as the Procfile runs them: what they log and what they count.

The simulator delivers signed webhooks to gunicorn; the relay publishes them; a prefork
Celery worker processes them and serves its /metrics; beat runs as its own process and
serves the database gauges. Every
line each role wrote must be one JSON object, and none may hold a secret the processes were
given.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from models.db import make_engine, make_session_factory
from models.events import UNFINISHED_STATUSES, WebhookEvent
from rivyahooks_foundation.settings import Settings
from rivyahooks_simulator.config import SimConfig
from rivyahooks_simulator.server import Simulator
from tests.conftest import SECRET, empty_tables
from tests.support import services
from tests.support.eventually import eventually
from tests.support.metrics import Scrape, samples, value
from tests.support.otlp import Span, otlp_collector
from tests.support.processes import (
    BIN,
    ROOT,
    celery_beat,
    celery_worker,
    child_env,
    free_port,
    gunicorn,
    own_redis_database,
    relay,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

REDIS_DB = 11
GENERATIONS = 6
OUTPUTS = 2
OUTPUT_BYTES = 16 * 1024
API_KEY = "rvya_sk_e2e_" + "k" * 32
METRICS_TOKEN = "metrics-token-e2e-0123456789"
RESULTS_TOKEN = "results-token-e2e-0123456789"
ROLES = ("web", "relay", "worker", "beat")
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@dataclass
class Run:
    logs: dict[str, Path]
    worker: Scrape
    relay: Scrape
    beat: Scrape
    web: Scrape
    secrets: tuple[str, ...]
    spans: list[Span]
    traceparents: dict[str, str | None]  # event id -> what its row carries


@pytest.fixture(scope="module")
def run(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Run:
    services.require("Redis", services.REDIS_URL)
    tmp = tmp_path_factory.mktemp("e2e")
    engine = make_engine(postgres_url)
    try:
        return _run_every_role(postgres_url, tmp, make_session_factory(engine))
    finally:
        engine.dispose()


def _run_every_role(postgres_url: str, tmp: Path, sessions: sessionmaker[Session]) -> Run:
    empty_tables(sessions.kw["bind"])
    logs = {role: tmp / f"{role}.log" for role in ROLES}
    # Every generation succeeds, so every event has exactly OUTPUTS downloads to count.
    config = SimConfig(
        queued_seconds=0.05,
        processing_seconds=0.05,
        outputs=OUTPUTS,
        output_bytes=OUTPUT_BYTES,
        failure_ratio=0.0,
    )
    with (
        Simulator(config=config, api_keys={API_KEY: None}).start() as sim,
        otlp_collector() as collector,
    ):
        settings = Settings(
            database_url=postgres_url,
            broker_url=own_redis_database(services.REDIS_URL + "/0", REDIS_DB),
            webhook_secrets=(SECRET,),
            storage_url=f"file://{tmp / 'results'}",
            rivya_api_base=sim.url,
            rivya_api_key=API_KEY,
            download_allowed_hosts=("127.0.0.1",),
            metrics_token=METRICS_TOKEN,
            results_api_token=RESULTS_TOKEN,
            worker_metrics_port=free_port(),
            relay_metrics_port=free_port(),
            beat_metrics_port=free_port(),
            metrics_dir=str(tmp / "metrics"),
            # The most lines, so the most chances for a secret to show.
            log_level="DEBUG",
            sweep_interval_seconds=1,
            reconcile_interval_seconds=2,
            otel_exporter_otlp_endpoint=collector.url,
        )
        # Spans leave each process within 0.1 s instead of the default 5 s.
        quick = {"OTEL_BSP_SCHEDULE_DELAY": "100"}
        with (
            gunicorn(settings, log=logs["web"], WEB_ACCESS_LOG="1", **quick) as web_url,
            relay(settings, log=logs["relay"]),
            celery_worker(settings, concurrency=2, log=logs["worker"], **quick),
            celery_beat(settings, tmp / "beat-schedule", logs["beat"]),
        ):
            sim.register_endpoint(web_url + "/webhooks/rivya", secret=SECRET)
            sim.wait_terminal(sim.scenario(GENERATIONS), timeout=30)
            sim.wait_deliveries_idle(timeout=30)

            def settled() -> bool:
                with sessions() as session:
                    total = session.scalar(select(func.count()).select_from(WebhookEvent))
                    waiting = session.scalar(
                        select(func.count()).where(WebhookEvent.status.in_(UNFINISHED_STATUSES))
                    )
                return total == GENERATIONS and waiting == 0

            eventually(settled, 60, "every event stored and processed")
            worker_url = f"http://127.0.0.1:{settings.worker_metrics_port}/metrics"
            beat_url = f"http://127.0.0.1:{settings.beat_metrics_port}/metrics"
            # Beat schedules a reconcile every 2 s; one that ran shows in both scrapes.
            worker = eventually(
                lambda: _scrape_if(worker_url, "rivyahooks_tasks_total", task="reconcile.run"),
                30,
                "a reconcile run counted by the worker",
            )
            beat = eventually(
                lambda: _scrape_if(beat_url, "rivyahooks_reconcile_last_run_timestamp_seconds"),
                30,
                "beat's gauges showing a reconcile run",
            )
            relay_scrape = samples(
                httpx.get(f"http://127.0.0.1:{settings.relay_metrics_port}/metrics").text
            )
            downloads = GENERATIONS * OUTPUTS

            def exported() -> list[Span]:
                spans = collector.snapshot()
                named = Counter((span.role, span.name) for span in spans)
                return spans if named["worker", "result.download"] >= downloads else []

            try:
                spans = eventually(exported, 30, "every download's span exported")
            except TimeoutError:
                named = Counter((span.role, span.name) for span in collector.snapshot())
                raise AssertionError(f"spans exported: {dict(named)}") from None
            with sessions() as session:
                traceparents = dict(
                    session.execute(select(WebhookEvent.event_id, WebhookEvent.traceparent)).all()
                )
            web = samples(
                httpx.get(
                    web_url + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
                ).text
            )
    return Run(
        logs,
        worker,
        relay_scrape,
        beat,
        web,
        (SECRET, API_KEY, METRICS_TOKEN, RESULTS_TOKEN),
        spans,
        traceparents,
    )


def _scrape_if(url: str, name: str, **labels: str) -> Scrape | None:
    """Return the scrape once it has a non-zero sample `name` (any other labels)."""
    try:
        scrape = samples(httpx.get(url, timeout=5).text)
    except httpx.TransportError:
        return None
    wanted = set(labels.items())
    found = any(n == name and wanted <= set(ls) and v for (n, ls), v in scrape.items())
    return scrape if found else None


def test_every_line_each_role_writes_is_one_json_object(run: Run) -> None:
    for role, path in run.logs.items():
        lines = path.read_text().splitlines()
        assert len(lines) > 5, role
        for number, line in enumerate(lines, start=1):
            try:
                record = json.loads(line)
            except ValueError:
                pytest.fail(f"{role}.log line {number} is not JSON: {line[:300]}")
            assert isinstance(record, dict), (role, number)
            assert TIMESTAMP.match(record["timestamp"]), (role, record)
            assert record["level"] in {"debug", "info", "warning", "error", "critical"}
            assert record["event"], (role, record)
            # Celery's entry serves worker and beat; each names itself once started.
            assert record["role"] in {role, "celery"}, (role, record)


def _records(run: Run, role: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in run.logs[role].read_text().splitlines()]


def test_lines_carry_the_ids_of_what_they_are_about(run: Run) -> None:
    accepted = [r for r in _records(run, "web") if str(r["event"]).startswith("event accepted")]
    assert len(accepted) == GENERATIONS
    assert all(str(r.get("event_id", "")).startswith("evt_") for r in accepted)
    access = [r for r in _records(run, "web") if r["logger"] == "gunicorn.access"]
    assert {r["path"] for r in access} >= {"/webhooks/rivya", "/metrics"}

    processed = [
        r for r in _records(run, "worker") if " processed " in str(r["event"]) and "event_id" in r
    ]
    assert len(processed) == GENERATIONS
    for record in processed:
        assert str(record["task_id"]).startswith("task_")
        assert record["celery_task_id"]


def test_no_secret_appears_in_any_line(run: Run) -> None:
    for role, path in run.logs.items():
        text = path.read_text()
        for secret in run.secrets:
            assert secret not in text, f"{role}.log holds a secret"
        # Nor the webhook key in the base64 form HMAC uses.
        assert SECRET.removeprefix("whsec_") not in text


def test_worker_metrics_show_task_outcomes_and_downloads(run: Run) -> None:
    assert (
        value(run.worker, "rivyahooks_tasks_total", task="events.process", outcome="succeeded")
        == GENERATIONS
    )
    assert value(run.worker, "rivyahooks_events_finished_total", status="processed") == GENERATIONS
    assert value(run.worker, "rivyahooks_task_duration_seconds_count", task="events.process") == (
        GENERATIONS
    )
    stored = value(run.worker, "rivyahooks_downloads_total", outcome="stored")
    assert stored == GENERATIONS * OUTPUTS
    assert value(run.worker, "rivyahooks_download_bytes_total") == stored * OUTPUT_BYTES
    assert value(run.worker, "rivyahooks_download_duration_seconds_count") == stored
    # Every delivery arrived: the reconciler found nothing the webhooks missed.
    assert value(run.worker, "rivyahooks_reconcile_found_events_total") == 0
    assert value(run.web, "rivyahooks_deliveries_total", outcome="accepted") == GENERATIONS


def test_relay_metrics_count_every_publish_and_its_lag(run: Run) -> None:
    # Every event was stored once and processed once, so published once (no retries).
    assert value(run.relay, "rivyahooks_relay_published_total", outcome="published") == (
        GENERATIONS
    )
    assert value(run.relay, "rivyahooks_relay_lag_seconds_count") == GENERATIONS
    assert any(name == "rivyahooks_build_info" for name, _ in run.relay)


def test_beat_serves_the_database_gauges(run: Run) -> None:
    assert value(run.beat, "rivyahooks_events", status="dead") == 0
    assert value(run.beat, "rivyahooks_events", status="received") == 0
    assert ("rivyahooks_oldest_unfinished_event_age_seconds", ()) in run.beat
    assert value(run.beat, "rivyahooks_database_gauges_timestamp_seconds") > 0


def test_a_configuration_failure_is_one_error_line_naming_the_variable(tmp_path: Path) -> None:
    env = child_env(
        Settings(database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}"),
        RIVYA_WEBHOOK_SCHEME="bogus",
        METRICS_DIR=str(tmp_path),
    )
    result = subprocess.run(
        [str(BIN / "celery"), "--quiet", "-A", "tasks.worker", "worker"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = [json.loads(line) for line in result.stderr.decode().splitlines()]
    assert result.stdout == b""
    errors = [line for line in lines if line["level"] == "error"]
    assert len(errors) == 1
    assert "RIVYA_WEBHOOK_SCHEME" in str(errors[0]["event"])


def test_one_trace_runs_from_each_delivery_through_the_worker_to_each_download(run: Run) -> None:
    received = [s for s in run.spans if s.name == "webhook.receive"]
    assert len(received) == GENERATIONS
    for root in received:
        assert root.role == "web"
        assert root.attributes["rivyahooks.event_id"].startswith("evt_")
        trace = [s for s in run.spans if s.trace_id == root.trace_id]
        (task,) = [s for s in trace if s.name == "task events.process"]
        assert task.role == "worker"
        assert task.parent_id == root.span_id
        assert task.attributes["rivyahooks.event_id"] == root.attributes["rivyahooks.event_id"]
        downloads = [s for s in trace if s.name == "result.download"]
        assert len(downloads) == OUTPUTS
        assert {d.parent_id for d in downloads} == {task.span_id}
        assert sorted(d.attributes["rivyahooks.index"] for d in downloads) == ["0", "1"]
        # The row carries the trace too, for whoever publishes it later (relay, replay).
        traceparent = run.traceparents[root.attributes["rivyahooks.event_id"]]
        assert (traceparent or "").startswith(f"00-{root.trace_id}-{root.span_id}-")
