"""Run the demo: start the simulator and every Procfile role, run the scenario, report.

Every process the demo starts is stopped when it ends: on success, on failure, on Ctrl-C,
and when the demo itself is killed or its terminal closed.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import socket
import sys
import time
from pathlib import Path

import click

from models.migrate import upgrade
from rivyahooks.demo.progress import http_ok, say, wait_until
from rivyahooks.demo.report import check_generations, results_api_example
from rivyahooks.demo.scenario import run_scenario, simulator_state
from rivyahooks.roles import ROLES, SERVICE_ROLES
from rivyahooks.supervisor import Spec, Supervisor, exit_on_stop_signals, ignore_stop_signals
from rivyahooks_foundation.settings import Settings
from tasks.runtime import Runtime

DEMO_DIR = Path("var/demo")
DROP_RATIO = 0.2
DUPLICATE_RATIO = 0.2
OUTPUTS = 2
OUTPUT_BYTES = 256 * 1024
DEADLINE_SECONDS = 100


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _settings(sim_port: int) -> Settings:
    """Return the demo's settings: SQLite and its broker under DEMO_DIR, fresh secrets."""
    api_key = "rvya_sk_demo_" + secrets.token_hex(12)
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    return Settings(
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
        outbound_metrics_port=0,
        beat_metrics_port=0,
    )


def _simulator_command(
    bin_dir: Path, settings: Settings, sim_port: int, web_port: int
) -> list[str]:
    """Return the simulator's command: Rivya with the demo's key, secret and faults."""
    return [
        str(bin_dir / "rivya-hooks"),
        "simulate",
        "--port",
        str(sim_port),
        "--api-key",
        settings.rivya_api_key,
        "--signing-secret",
        settings.webhook_secrets[0],
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
    ]


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
    settings = _settings(sim_port)
    env = {**os.environ, **settings.to_env(), "HOST": "127.0.0.1", "PORT": str(web_port)}
    env.update(WEB_CONCURRENCY="2", WEB_THREADS="4")
    supervisor = Supervisor()
    # Each role runs in a session of its own, out of reach of the terminal's signals: a
    # `kill` of the demo or a closed terminal must stop them as Ctrl-C does, through the
    # `finally` below, rather than end the demo alone and leave every role running.
    exit_on_stop_signals()
    try:
        say("migrating the SQLite database")
        upgrade(settings.database_url)
        say(f"starting the simulator (drops {DROP_RATIO:.0%}, duplicates {DUPLICATE_RATIO:.0%})")
        simulator = _simulator_command(bin_dir, settings, sim_port, web_port)
        supervisor.start(Spec("simulator", simulator, env=env, log=logs / "simulator.log"))
        say("starting web (gunicorn), relay, worker, outbound and beat with the Procfile's lines")
        # The Procfile's commands (kept in the package), run by a shell as a platform runs
        # them, with this environment's executables first on PATH.
        env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
        env["WORKER_CONCURRENCY"] = "4"
        env["DATA_DIR"] = str(DEMO_DIR)
        for role in SERVICE_ROLES:
            command = ["bash", "-c", ROLES[role]]
            supervisor.start(Spec(role, command, env=env, log=logs / f"{role}.log"))
        wait_until(
            "the simulator",
            lambda: http_ok(f"{settings.rivya_api_base}/_sim/state"),
            supervisor.watch,
            30,
        )
        wait_until(
            "the receiver",
            lambda: http_ok(f"http://127.0.0.1:{web_port}/healthz"),
            supervisor.watch,
            30,
        )
        status = _exercise(
            settings, supervisor, generations, started, f"http://127.0.0.1:{web_port}"
        )
        if keep_running and status == 0:
            _serve_console(settings, web_port, supervisor)
        return status
    except (RuntimeError, TimeoutError) as exc:
        say(f"FAILED: {exc}; logs are in {logs}")
        return 1
    finally:
        # A second signal must not cut the stop short and leave some roles running.
        ignore_stop_signals()
        say("stopping everything the demo started")
        supervisor.stop_all()
        # Results and logs stay for a look; the next run starts from scratch.
        say(f"results and logs are in {DEMO_DIR}")


def _serve_console(settings: Settings, web_port: int, supervisor: Supervisor) -> None:
    """Keep everything running for a look at the console, until Ctrl-C."""
    click.echo(
        f"\nconsole:         http://127.0.0.1:{web_port}/console/\n"
        f"admin token:     {settings.console_admin_token}\n"
        f"read-only token: {settings.console_readonly_token}\n"
        "The web role, relay, worker, outbound, beat and simulator keep running; Ctrl-C stops "
        "them."
    )
    try:
        while True:
            supervisor.watch()
            time.sleep(1)
    except KeyboardInterrupt:
        click.echo("", err=True)
    except RuntimeError as exc:
        say(f"stopped keeping the demo running: {exc}")


def _exercise(
    settings: Settings, supervisor: Supervisor, count: int, started: float, web_url: str
) -> int:
    """Run the scenario and print the report; return the exit status."""
    runtime = Runtime(settings)
    task_ids = run_scenario(runtime, supervisor.watch, count, started + DEADLINE_SECONDS)
    report = check_generations(
        settings,
        runtime.sessions,
        runtime.rivya,
        task_ids,
        simulator_state(settings.rivya_api_base),
    )
    runtime.close()
    click.echo(report.text)
    click.echo(results_api_example(web_url, settings.results_api_tokens[0]))
    click.echo(f"\nfinished in {time.monotonic() - started:.0f} s")
    if report.problems:
        for problem in report.problems:
            click.echo(f"problem: {problem}", err=True)
        return 1
    click.echo("every generation is accounted for")
    return 0
