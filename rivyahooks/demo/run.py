"""`make demo`: the whole service end to end on embedded defaults, in under two minutes.

Starts the simulator, the receiver (gunicorn), the relay, a worker and beat as real
processes with the Procfile's commands, on SQLite and the SQLite-backed broker under
var/demo. Creates
generations while the simulator drops and duplicates deliveries, waits, reconciles, then
checks every generation against the simulator and prints what happened.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import httpx
from sqlalchemy import func, select

from models.events import UNFINISHED_STATUSES, EventSource, WebhookEvent
from models.generations import Generation, GenerationOutput
from models.migrate import upgrade
from rivyahooks.output import table
from rivyahooks.procfile import procfile_roles
from rivyahooks_foundation.settings import Settings
from rivyahooks_protocol.client import RivyaClient
from rivyahooks_simulator.content import result_bytes_sha256
from tasks.runtime import Runtime

DEMO_DIR = Path("var/demo")
DROP_RATIO = 0.2
DUPLICATE_RATIO = 0.2
OUTPUTS = 2
OUTPUT_BYTES = 256 * 1024
MODELS = ("rivya-image-1", "rivya-audio-1")
DEADLINE_SECONDS = 100


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _say(message: str) -> None:
    click.echo(f"demo: {message}", err=True)


@dataclass
class Processes:
    logs: Path
    started: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(self, name: str, command: list[str], env: dict[str, str]) -> None:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 (kept open for the child)
        process = subprocess.Popen(command, env=env, stdout=log, stderr=log, start_new_session=True)
        self.started.append((name, process))

    def check_alive(self) -> None:
        for name, process in self.started:
            if process.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {process.returncode}; see {self.logs / (name + '.log')}"
                )

    def stop_all(self) -> None:
        for _name, process in reversed(self.started):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for _name, process in self.started:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _wait_until(what: str, ready: Callable[[], bool], processes: Processes, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        processes.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.25)


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code < 500
    except httpx.TransportError:
        return False


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def run_demo(generations: int = 50, keep_running: bool = False) -> int:
    """Run the demo; return the exit status (0 only if every generation is accounted for).

    With `keep_running`, a demo that succeeded leaves every process running, prints the
    console's URL and tokens, and stops on Ctrl-C; a failed demo still stops at once.
    """
    started = time.monotonic()
    if DEMO_DIR.exists():
        shutil.rmtree(DEMO_DIR)
    logs = DEMO_DIR / "logs"
    logs.mkdir(parents=True)
    bin_dir = Path(sys.executable).parent
    sim_port, web_port = _free_port(), _free_port()
    api_key = "rvya_sk_demo_" + secrets.token_hex(12)
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    settings = Settings(
        database_url=f"sqlite:///{DEMO_DIR / 'rivya-hooks.sqlite3'}",
        broker_url=f"sqla+sqlite:///{DEMO_DIR / 'broker.sqlite3'}",
        webhook_secrets=(secret,),
        storage_url=f"file://{DEMO_DIR / 'results'}",
        rivya_api_base=f"http://127.0.0.1:{sim_port}",
        rivya_api_key=api_key,
        download_allowed_hosts=("127.0.0.1",),
        sweep_interval_seconds=5,
        # The demo runs reconcile itself, to show what it recovers.
        reconcile_interval_seconds=3600,
        reconcile_poll_after_seconds=0,
        reconcile_overlap_seconds=60,
        rivya_http_timeout_seconds=10,
        console_admin_token=secrets.token_urlsafe(24),
        console_readonly_token=secrets.token_urlsafe(24),
        # The demo serves plain http on 127.0.0.1: local development.
        console_secure_cookie=False,
        # The demo's own read token: the web role serves the results API with it.
        results_api_tokens=(secrets.token_urlsafe(24),),
        # The demo's logs are read by people; production keeps JSON.
        log_format="console",
        # No metrics servers: a demo must not depend on free ports beyond its own two.
        worker_metrics_port=0,
        beat_metrics_port=0,
    )
    env = {**os.environ, **settings.to_env(), "HOST": "127.0.0.1", "PORT": str(web_port)}
    env.update(WEB_CONCURRENCY="2", WEB_THREADS="4")
    processes = Processes(logs)
    # Each role runs in a session of its own, out of reach of the terminal's signals: a
    # `kill` of the demo or a closed terminal must stop them as Ctrl-C does, through the
    # `finally` below, rather than end the demo alone and leave every role running.
    for stop_signal in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop_signal, _exit_on_signal)
    try:
        _say("migrating the SQLite database")
        upgrade(settings.database_url)
        _say(f"starting the simulator (drops {DROP_RATIO:.0%}, duplicates {DUPLICATE_RATIO:.0%})")
        processes.start(
            "simulator",
            [
                str(bin_dir / "rivya-hooks"),
                "simulate",
                "--port",
                str(sim_port),
                "--api-key",
                api_key,
                "--signing-secret",
                secret,
                "--deliver-to",
                f"http://127.0.0.1:{web_port}/webhooks/rivya",
                "--drop-ratio",
                str(DROP_RATIO),
                "--duplicate-ratio",
                str(DUPLICATE_RATIO),
                "--failure-ratio",
                "0.1",
                "--outputs",
                str(OUTPUTS),
                "--output-bytes",
                str(OUTPUT_BYTES),
                "--queued-seconds",
                "0.5",
                "--processing-seconds",
                "1.5",
                "--seed",
                "2026",
                "--quiet",
            ],
            env,
        )
        _say("starting web (gunicorn), relay, worker and beat with the Procfile's own lines")
        # The Procfile's commands, run by a shell as a platform runs them, with this
        # environment's executables first on PATH: the demo proves the Procfile works.
        env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
        env["WORKER_CONCURRENCY"] = "4"
        roles = procfile_roles(Path("Procfile"))
        for role in ("web", "relay", "worker", "beat"):
            processes.start(role, ["bash", "-c", roles[role]], env)
        _wait_until(
            "the simulator",
            lambda: _http_ok(f"{settings.rivya_api_base}/_sim/state"),
            processes,
            30,
        )
        _wait_until(
            "the receiver", lambda: _http_ok(f"http://127.0.0.1:{web_port}/healthz"), processes, 30
        )
        status = _exercise(
            settings, processes, generations, started, f"http://127.0.0.1:{web_port}"
        )
        if keep_running and status == 0:
            _serve_console(settings, web_port, processes)
        return status
    except (RuntimeError, TimeoutError) as exc:
        _say(f"FAILED: {exc}; logs are in {logs}")
        return 1
    finally:
        # A second signal must not cut the stop short and leave some roles running.
        for stop_signal in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(stop_signal, signal.SIG_IGN)
        _say("stopping everything the demo started")
        processes.stop_all()
        # Results and logs stay for a look; the next run starts from scratch.
        _say(f"results and logs are in {DEMO_DIR}")


def _serve_console(settings: Settings, web_port: int, processes: Processes) -> None:
    """Keep everything running for a look at the console, until Ctrl-C."""
    click.echo(
        f"\nconsole:         http://127.0.0.1:{web_port}/console/\n"
        f"admin token:     {settings.console_admin_token}\n"
        f"read-only token: {settings.console_readonly_token}\n"
        "The web role, relay, worker, beat and simulator keep running; Ctrl-C stops them."
    )
    try:
        while True:
            processes.check_alive()
            time.sleep(1)
    except KeyboardInterrupt:
        click.echo("", err=True)
    except RuntimeError as exc:
        _say(f"stopped keeping the demo running: {exc}")


def _exercise(
    settings: Settings, processes: Processes, count: int, started: float, web_url: str
) -> int:
    runtime = Runtime(settings)
    sessions = runtime.sessions
    client = runtime.rivya
    _say(f"creating {count} generations through the API, recorded as `rivya-hooks submit` does")
    from tasks.generation_state import record_submitted

    task_ids: list[str] = []
    for number in range(count):
        generation = client.create_generation(
            MODELS[number % len(MODELS)],
            prompt=f"demo generation {number}",
            idempotency_key=str(uuid.uuid4()),
        )
        task_ids.append(str(generation["id"]))
        with sessions.begin() as session:
            record_submitted(session, generation)

    def simulator_state() -> dict[str, Any]:
        return dict(httpx.get(f"{settings.rivya_api_base}/_sim/state", timeout=5).json())

    def all_terminal_at_rivya() -> bool:
        state = simulator_state()
        pending = state["generations"]["queued"] + state["generations"]["processing"]
        return bool(pending == 0)

    _say("waiting for Rivya to finish them and deliver what it does not drop")
    _wait_until("generations to finish", all_terminal_at_rivya, processes, 60)

    def deliveries_settled() -> bool:
        with sessions() as session:
            unfinished = session.scalar(
                select(func.count()).where(WebhookEvent.status.in_(UNFINISHED_STATUSES))
            )
        return unfinished == 0

    def simulator_idle() -> bool:
        busy = httpx.get(f"{settings.rivya_api_base}/_sim/deliveries", timeout=5).json()
        return bool(busy["pending"] == 0 and busy["running"] == 0)

    _wait_until("the last deliveries and their retries", simulator_idle, processes, 60)
    _wait_until("delivered events to be processed", deliveries_settled, processes, 60)
    with sessions() as session:
        by_webhook = session.scalar(
            select(func.count()).where(WebhookEvent.source == EventSource.WEBHOOK)
        )
    _say(f"{by_webhook} events arrived by webhook; running reconcile for the rest")

    from tasks.reconcile import reconcile

    summary = reconcile(runtime)
    _say(
        f"reconcile: {summary.events_listed} events listed, {summary.events_missing} missing here, "
        f"{summary.stored} stored for the relay"
    )

    def everything_settled() -> bool:
        if not deliveries_settled():
            return False
        with sessions() as session:
            terminal = session.scalar(
                select(func.count()).where(
                    Generation.task_id.in_(task_ids), Generation.status.in_(["succeeded", "failed"])
                )
            )
        return terminal == len(task_ids)

    remaining = max(10.0, DEADLINE_SECONDS - (time.monotonic() - started))
    _wait_until("reconciled events to be processed", everything_settled, processes, remaining)
    report = _report(settings, sessions, client, task_ids, simulator_state())
    runtime.close()
    click.echo(report.text)
    click.echo(_show_results_api(web_url, settings.results_api_tokens[0]))
    click.echo(f"\nfinished in {time.monotonic() - started:.0f} s")
    if report.problems:
        for problem in report.problems:
            click.echo(f"problem: {problem}", err=True)
        return 1
    click.echo("every generation is accounted for")
    return 0


def _show_results_api(web_url: str, token: str) -> str:
    """Read the results as an app does; return the two requests and what they answered."""
    auth = {"Authorization": f"Bearer {token}"}
    feed_url = f"{web_url}/results/feed?after=&limit=1"
    page = httpx.get(feed_url, headers=auth, timeout=10).json()
    (entry,) = page["data"]
    listing = httpx.get(f"{web_url}/results?status=succeeded&limit=1", headers=auth, timeout=10)
    output = listing.json()["data"][0]["outputs"][0]
    file_url = f"{web_url}{output['url']}"
    answer = httpx.get(file_url, headers=auth, timeout=10)
    return "\n".join(
        [
            "",
            "How an app reads its results (a token of RESULTS_API_TOKENS; the web role serves):",
            f'  curl -H "Authorization: Bearer $TOKEN" "{feed_url}"',
            f'  -> {{"data": [{{"task_id": "{entry["task_id"]}", "status": "{entry["status"]}", '
            f'"outputs": [...], "cursor": "{entry["cursor"]}", ...}}], '
            f'"next_cursor": "{page["next_cursor"]}", '
            f'"has_more": {str(page["has_more"]).lower()}}}',
            f'  curl -OJ -H "Authorization: Bearer $TOKEN" "{file_url}"',
            f"  -> {answer.status_code}, {len(answer.content)} bytes, "
            f"{answer.headers.get('Content-Type')}, ETag {answer.headers.get('ETag')}, "
            f"saved as {output['filename']}",
            f"  (TOKEN={token} in this demo; the API's description: {web_url}/openapi.json)",
        ]
    )


@dataclass
class Report:
    text: str
    problems: list[str]


def _report(
    settings: Settings,
    sessions: Any,
    client: RivyaClient,
    task_ids: list[str],
    sim_state: dict[str, Any],
) -> Report:
    problems: list[str] = []
    root = settings.storage_root()
    files = bytes_stored = verified = 0
    failed_codes: dict[str, int] = {}
    with sessions() as session:
        # Generations (not events) by the way their outcome first reached us.
        by_source = dict(
            session.execute(
                select(WebhookEvent.source, func.count(func.distinct(WebhookEvent.task_id)))
                .where(WebhookEvent.task_id.in_(task_ids))
                .group_by(WebhookEvent.source)
            ).all()
        )
        for task_id in task_ids:
            truth = client.get_generation(task_id)
            row = session.scalars(select(Generation).where(Generation.task_id == task_id)).one()
            if row.status.value != truth["status"]:
                problems.append(
                    f"{task_id}: stored {row.status.value}, Rivya says {truth['status']}"
                )
                continue
            if truth["status"] == "failed":
                code = (truth.get("error") or {}).get("code") or "unknown"
                failed_codes[code] = failed_codes.get(code, 0) + 1
                if row.error_code != code:
                    problems.append(f"{task_id}: error {row.error_code}, Rivya says {code}")
                continue
            outputs = list(
                session.scalars(select(GenerationOutput).where(GenerationOutput.task_id == task_id))
            )
            expected = len(truth["result"]["urls"])
            if len(outputs) != expected:
                problems.append(f"{task_id}: {len(outputs)} of {expected} outputs stored")
            for output in outputs:
                files += 1
                data = (root / output.storage_key).read_bytes()
                bytes_stored += len(data)
                actual = hashlib.sha256(data).hexdigest()
                truth_sha = result_bytes_sha256(task_id, output.index, len(data))
                if actual == output.sha256 == truth_sha:
                    verified += 1
                else:
                    problems.append(f"{task_id}/{output.index}: checksum mismatch")
    deliveries = sim_state["deliveries"]
    by_webhook = by_source.get(EventSource.WEBHOOK, 0)
    by_reconcile = by_source.get(EventSource.RECONCILE, 0)
    # Every successful delivery beyond the first of an event was answered 2xx and dropped here.
    with sessions() as session:
        webhook_events = session.scalar(
            select(func.count()).where(WebhookEvent.source == EventSource.WEBHOOK)
        )
    duplicates = deliveries["succeeded"] - (webhook_events or 0)
    rows = [
        ["generations", len(task_ids)],
        ["delivered by webhook", by_webhook],
        ["recovered by reconcile", by_reconcile],
        ["deliveries dropped by the simulator", deliveries["dropped"]],
        ["duplicates suppressed", duplicates],
        ["files stored", files],
        ["bytes stored", bytes_stored],
        ["checksums verified", f"{verified}/{files}"],
        [
            "failed generations",
            sum(failed_codes.values()),
        ],
    ]
    rows += [[f"  error {code}", n] for code, n in sorted(failed_codes.items())]
    if by_webhook + by_reconcile < len(task_ids):
        problems.append("fewer events than generations")
    return Report(table(rows, ["what", "count"]), problems)
