"""The Procfile's roles on their hosts, with the settings a production install would give them.

Each role is its Procfile line run by `bash -c`, as a platform runs it, inside its host's
network namespace and a UTS namespace of its own, so every host has its own hostname (Celery's
node names and the storage's writer ids carry it, as on separate machines). The web and
worker roles reach PostgreSQL through PgBouncer, so does web2's relay; web1's relay and the
release connect directly, as the README allows. A role that dies is restarted by the
supervisor.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from rivyahooks.procfile import procfile_roles
from rivyahooks.supervisor import Spec
from tests.soak import layout
from tests.soak.layout import Run
from tests.soak.services import BIN, s3_environ
from tests.support.processes import ROOT

PROCFILE = ROOT / "Procfile"
# The long-running roles, by host: two web hosts (each with a relay), two worker hosts and
# one for beat.
PLACEMENT = {
    "web1": ("web", "relay"),
    "web2": ("web", "relay"),
    "worker1": ("worker",),
    "worker2": ("worker",),
    "ops": ("beat",),
}
# Time limits short enough for a 5-minute run: an attempt may take 90 s (a 200 MiB result on
# a busy 2-core machine), the broker redelivers after 120 s. A claim's lease is 45 s (the
# default), renewed while the attempt runs: a stopped worker's lapses 45 s after its last
# renewal.
PROCESS_TIME_LIMIT_SECONDS = 90
TASK_VISIBILITY_TIMEOUT_SECONDS = 120
LEASE_SECONDS = 45
SWEEP_INTERVAL_SECONDS = 10
RECONCILE_INTERVAL_SECONDS = 30


def settings_env(run: Run, *, pooled: bool) -> dict[str, str]:
    """The environment every role gets: a production configuration pointed at the hosts.

    `pooled` roles reach PostgreSQL through PgBouncer and say so (DATABASE_POOLER), as the
    README asks of a transaction-pooling setup.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTEST_"))}
    env.update(s3_environ(run))
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        DATABASE_URL=run.pooled_database_url() if pooled else run.direct_database_url(),
        BROKER_URL=run.broker_url(),
        RIVYA_WEBHOOK_SECRETS=run.webhook_secret,
        RIVYA_API_BASE=run.simulator_url(),
        RIVYA_API_KEY=run.api_key,
        RIVYA_DOWNLOAD_ALLOWED_HOSTS=run.network["rivya"].address,
        STORAGE_URL=f"s3://{layout.BUCKET}/results",
        RESULTS_API_TOKENS=run.results_token,
        SWEEP_INTERVAL_SECONDS=str(SWEEP_INTERVAL_SECONDS),
        RECONCILE_INTERVAL_SECONDS=str(RECONCILE_INTERVAL_SECONDS),
        RECONCILE_OVERLAP_SECONDS="120",
        RECONCILE_POLL_AFTER_SECONDS="30",
        PROCESS_TIME_LIMIT_SECONDS=str(PROCESS_TIME_LIMIT_SECONDS),
        TASK_VISIBILITY_TIMEOUT_SECONDS=str(TASK_VISIBILITY_TIMEOUT_SECONDS),
        WEB_CONCURRENCY="1",
        WEB_THREADS="4",
        WORKER_CONCURRENCY="2",
        PROCESS_LEASE_SECONDS=str(LEASE_SECONDS),
        PORT=str(layout.WEB_PORT),
        # nginx on the edge is the proxy whose X-Forwarded-For names the client.
        TRUSTED_PROXIES=run.network["edge"].address,
    )
    if pooled and run.pool_mode == "transaction":
        env["DATABASE_POOLER"] = "pgbouncer"
    return env


def role_spec(run: Run, host: str, role: str, clock: str | None = None) -> Spec:
    """The spec of one role on one host; `clock` (e.g. "+5s") runs it under faketime."""
    line = procfile_roles(PROCFILE)[role]
    # One relay connects straight to PostgreSQL (woken by NOTIFY), the other through
    # PgBouncer (polling): both ways the README allows, side by side.
    env = settings_env(run, pooled=role != "relay" or host == "web2")
    env["HOST"] = run.network[host].address
    cwd = ROOT
    if role == "beat":
        # beat keeps its schedule under ./var: the host's own directory, not the checkout's.
        cwd = run.rundir / host
        cwd.mkdir(exist_ok=True)
    command = ["unshare", "--uts", "bash", "-c", f"hostname {host} && {line}"]
    if clock:
        command = ["faketime", "-f", clock, *command]
    log = run.logdir / f"{host}-{role}.log"
    return Spec(
        f"{host}/{role}", run.network[host].exec(*command), env=env, cwd=cwd, log=log, restart=True
    )


def start_roles(run: Run) -> list[str]:
    """Start every long-running role; return their names."""
    names = []
    for host, roles in PLACEMENT.items():
        for role in roles:
            run.processes.start(role_spec(run, host, role))
            names.append(f"{host}/{role}")
    return names


def release(run: Run) -> None:
    """The release role (migrations), once, from the ops host, before the others start."""
    line = procfile_roles(PROCFILE)["release"]
    command = run.network["ops"].exec("bash", "-c", line)
    with (run.logdir / "ops-release.log").open("ab") as log:
        subprocess.run(
            command,
            env=settings_env(run, pooled=False),
            cwd=ROOT,
            stdout=log,
            stderr=log,
            timeout=180,
            check=True,
        )


def ops_command(run: Run, *command: str, timeout: float, log: Path) -> int:
    """Run an operator command on the ops host (direct database URL); return its status."""
    with log.open("ab") as out:
        done = subprocess.run(
            run.network["ops"].exec(*command),
            env=settings_env(run, pooled=False),
            cwd=ROOT,
            stdout=out,
            stderr=out,
            timeout=timeout,
            check=False,
        )
    return done.returncode
