"""The soak from start to end: build, load, attack, settle, check, report, and always clean up.

Whatever ends the run (success, a broken invariant, Ctrl-C, SIGTERM, a crash of the harness),
the `finally` stops every process, removes the namespaces and the bridge and the scratch
directory, and then proves it: anything of the run still there is a broken invariant.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from rivyahooks.supervisor import exit_on_stop_signals, ignore_stop_signals
from tests.soak import hosts, invariants, roles, services
from tests.soak.chaos import UNDO_TIMEOUT, Chaos
from tests.soak.figures import render
from tests.soak.follower import Follower
from tests.soak.hosts import Network
from tests.soak.invariants import Verdict
from tests.soak.layout import Run
from tests.soak.load import Load, plan
from tests.soak.monitor import Monitor
from tests.soak.schedule import STOP_SECONDS, make_schedule
from tests.soak.supervision import Processes
from tests.support.processes import ROOT

# Rivya's own faults, on for the whole load: lost, doubled, late and reordered deliveries,
# errors and rate limits of its API, result URLs that have already expired.
SIMULATOR_FAULTS = {
    "drop-ratio": 0.1,
    "duplicate-ratio": 0.1,
    "delay-max": 1.0,
    "reorder-ratio": 0.1,
    "api-error-ratio": 0.05,
    "rate-limit-ratio": 0.05,
    "expire-early-ratio": 0.05,
}
# After the last fault ends, every event must be processed within two minutes; the settle
# allows twice that before it declares the deployment stuck.
SETTLE_SECONDS = 240.0
LOGS = ROOT / "var" / "soak"


def soak(
    minutes: float,
    seed: int,
    rate: float,
    say: Callable[[str], None],
    pool_mode: str = "transaction",
) -> int:
    """Run the soak; return 0 when every invariant held, 1 naming those that broke."""
    for tag in hosts.remove_leftovers():
        say(f"removed the leftovers of an earlier run that died: {tag}")
    network = Network()
    rundir = Path(tempfile.mkdtemp(prefix=network.tag + "-"))
    # nginx's workers and PostgreSQL run as other users and must get into it.
    rundir.chmod(0o755)
    logdir = LOGS / network.tag
    logdir.mkdir(parents=True)
    run = Run(network, rundir, logdir, Processes(), pool_mode)
    postgres = services.Postgres(run)
    schedule = make_schedule(seed, minutes * 60)
    say(
        f"soak {network.tag}: {minutes:g} min, seed {seed}, {rate:g} generations/s, "
        f"PgBouncer in {pool_mode} mode; logs in {logdir}"
    )
    say("chaos schedule:")
    for fault in schedule:
        say("  " + fault.describe())
    exit_on_stop_signals()
    # Ctrl-C interrupts even when the soak was started in the background of a script, where
    # SIGINT is ignored from the start and Python would keep ignoring it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    inodes: set[int] = set()
    verdicts: list[Verdict] = []
    stoppers: list[Callable[[], None]] = []
    try:
        say("making the hosts")
        network.create()
        inodes = hosts.namespace_inodes(network.tag)
        say("starting PostgreSQL, PgBouncer, Redis and S3 on the data host")
        postgres.create()
        services.start_pgbouncer(run)
        services.start_redis(run)
        services.start_s3(run)
        say("release: migrations")
        roles.release(run)
        say("starting Rivya, the roles and the edge")
        services.start_simulator(run, seed, SIMULATOR_FAULTS)
        roles.start_roles(run)
        services.start_nginx(run)
        run.processes.begin_watching()
        services.wait_for(
            "the web roles through the edge",
            lambda: httpx.get(run.internal_url() + "/readyz", timeout=3).status_code == 200,
            90,
        )
        planned = plan(seed, int(rate * minutes * 60))
        load = Load(run.simulator_url(), run.api_key, rate, planned)
        follower = Follower(run.internal_url(), run.results_token)
        chaos = Chaos(run, postgres, schedule, say)
        monitor = Monitor(run, chaos, load)
        stoppers = [load.stop, chaos.stop, monitor.stop, follower.stop]
        say(f"load: {len(planned)} generations over {minutes:g} min; chaos on")
        follower.start()
        load.start()
        chaos.start()
        monitor.start()
        time.sleep(minutes * 60)  # the run's length itself, not a wait for a condition
        load.stop()
        say(f"load done: {len(load.created)} created; waiting for the last faults to end")
        if not chaos.wait(STOP_SECONDS + UNDO_TIMEOUT + 60):
            say("a fault is still under way; stopping it")
            chaos.stop()
        calm = time.time()
        _quiet_rivya(run)
        say("chaos over; settling")
        truth = _settle(run, load, say)
        say(f"settled after {time.time() - calm:.0f} s; checking")
        monitor.stop()
        follower.stop()
        verdicts = invariants.run_all(run, load.created, truth)
        for name, problems in monitor.running_problems.items():
            verdicts.append(Verdict(f"{name} (while running)", problems))
        verdicts.append(
            Verdict(
                "every fault injected and undone",
                [f"#{w.fault.number} {w.fault.kind}: {w.error}" for w in chaos.windows if w.error],
            )
        )
        verdicts.append(Verdict("no process without a restart died", list(run.processes.problems)))
        state = httpx.get(run.simulator_url() + "/_sim/state", timeout=10).json()
        say(
            "\n"
            + render(
                chaos.windows,
                monitor.recovery,
                state,
                truth,
                follower.first_final,
                verdicts,
                len(load.errors),
            )
        )
    finally:
        # A second Ctrl-C or SIGTERM must not cut the cleanup short.
        ignore_stop_signals()
        say("stopping everything and removing the hosts")
        for stop in stoppers:
            stop()
        run.processes.stop_all()
        postgres.shut_down()
        network.destroy()
        shutil.rmtree(rundir, ignore_errors=True)
    left = hosts.what_is_left(network.tag, inodes)
    verdicts.append(Verdict("nothing of the run left (namespaces, links, processes, mounts)", left))
    say("invariants:")
    for verdict in verdicts:
        say("  " + verdict.line())
    (logdir / "verdicts.json").write_text(invariants.json_lines(verdicts))
    return 0 if all(v.held for v in verdicts) else 1


def _quiet_rivya(run: Run) -> None:
    """Rivya's faults are part of the chaos: off once it is over (retries still run)."""
    zero = {name.replace("-", "_"): 0 for name in SIMULATOR_FAULTS}
    httpx.post(run.simulator_url() + "/_sim/faults", json=zero, timeout=10).raise_for_status()


def _settle(run: Run, load: Load, say: Callable[[str], None]) -> invariants.Truth:
    """Wait (bounded) until Rivya is idle and the deployment has caught up; return Rivya's view."""
    deadline = time.monotonic() + SETTLE_SECONDS

    def rivya_idle() -> bool:
        state = httpx.get(run.simulator_url() + "/_sim/state", timeout=5).json()
        busy = httpx.get(run.simulator_url() + "/_sim/deliveries", timeout=5).json()
        pending = state["generations"]["queued"] + state["generations"]["processing"]
        return bool(pending == 0 and busy["pending"] == 0 and busy["running"] == 0)

    services.wait_for(
        "Rivya to finish and deliver", rivya_idle, max(1.0, deadline - time.monotonic())
    )
    truth = invariants.rivya_truth(run, load.created)
    try:
        services.wait_for(
            "every event processed",
            lambda: invariants.settled(run, truth),
            max(1.0, deadline - time.monotonic()),
            interval=2,
        )
    except TimeoutError as exc:
        say(f"not settled: {exc}; checking what is there")
    return truth


def pid_tag() -> str:
    return f"{hosts.PREFIX}{os.getpid()}"
