"""The data host's services (PostgreSQL, PgBouncer, Redis, S3), the edge's nginx, Rivya.

PostgreSQL is a cluster of the run's own (initdb in the scratch directory, listening on the
data host's address and its loopback, its socket in the scratch directory too), never the
machine's shared server. It runs as the `postgres` user, which it insists on, under pg_ctl,
because the chaos restarts it the way an operator does (`pg_ctl stop -m fast|immediate`).
Everything else runs under the supervisor, restarted when it dies (Redis comes back empty:
no persistence).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg

from rivyahooks.supervisor import Spec
from tests.soak import layout
from tests.soak.layout import Run
from tests.soak.tools import DATABASE_USER, find
from tests.support.nginx import CONFIG as NGINX_CONFIG
from tests.support.processes import ROOT

BIN = Path(sys.executable).parent
PG_START_TIMEOUT = 60.0


def as_database_user(*command: str) -> list[str]:
    """Return `command` run as the database user (PostgreSQL and PgBouncer refuse root)."""
    return [
        "setpriv",
        f"--reuid={DATABASE_USER}",
        f"--regid={DATABASE_USER}",
        "--init-groups",
        *command,
    ]


def wait_for(what: str, ready: object, timeout: float, interval: float = 0.2) -> None:
    """Poll `ready()` until it is true; TimeoutError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if ready():  # type: ignore[operator]
                return
        except Exception:  # noqa: S110 (not ready yet, whatever it raised)
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready within {timeout:g} s")
        time.sleep(interval)


class Postgres:
    """The run's own cluster on the data host, started and stopped with pg_ctl."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.host = run.network["data"]
        self.datadir = run.rundir / "pg"
        self.socketdir = run.rundir / "pgsock"
        self.log = run.rundir / "postgres.log"

    def _pg_ctl(self, *args: str, timeout: float = PG_START_TIMEOUT + 10) -> None:
        command = self.host.exec(
            *as_database_user(find("pg_ctl") or "pg_ctl", "-D", str(self.datadir), *args)
        )
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl {' '.join(args)}: {done.stderr.strip()[-500:]}")

    def create(self) -> None:
        for directory in (self.datadir, self.socketdir):
            directory.mkdir()
            shutil.chown(directory, DATABASE_USER, DATABASE_USER)
        self.log.touch()
        shutil.chown(self.log, DATABASE_USER, DATABASE_USER)
        initdb = as_database_user(
            find("initdb") or "initdb",
            "-D",
            str(self.datadir),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        subprocess.run(initdb, capture_output=True, timeout=120, check=True)
        with (self.datadir / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '{self.host.address},127.0.0.1'\n"
                f"port = {layout.POSTGRES_PORT}\n"
                f"unix_socket_directories = '{self.socketdir}'\n"
                "max_connections = 300\n"
                # A process crash (what the chaos does) loses nothing without fsync; only an
                # operating system crash would, and the soak does not simulate one.
                "fsync = off\n"
                "shared_buffers = 64MB\n"
            )
        with (self.datadir / "pg_hba.conf").open("a") as hba:
            hba.write(
                f"host all all {self.run.network['data'].address.rsplit('.', 1)[0]}.0/24 trust\n"
            )
        self.start()
        with psycopg.connect(self.admin_url("postgres"), autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {layout.DATABASE}")

    def admin_url(self, database: str = layout.DATABASE) -> str:
        return f"postgresql://postgres@{self.host.address}:{layout.POSTGRES_PORT}/{database}"

    def start(self) -> None:
        self._pg_ctl("-l", str(self.log), "-w", "-t", str(int(PG_START_TIMEOUT)), "start")

    def stop(self, mode: str) -> None:
        self._pg_ctl("-m", mode, "-w", "-t", "30", "stop")

    def running(self) -> bool:
        return (self.datadir / "postmaster.pid").exists()

    def set_read_only(self, on: bool) -> None:
        """Make every new transaction read-only (or not again), as a failover in progress does."""
        value = "on" if on else "off"
        with psycopg.connect(self.admin_url(), autocommit=True, connect_timeout=5) as connection:
            connection.execute(f"ALTER SYSTEM SET default_transaction_read_only = {value}")
            connection.execute("SELECT pg_reload_conf()")

    def shut_down(self) -> None:
        if self.running():
            # The namespace's processes are killed next anyway.
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self.stop("immediate")
        if self.log.exists():
            shutil.copy(self.log, self.run.logdir / "postgres.log")


def start_pgbouncer(run: Run) -> None:
    """PgBouncer in front of the cluster for the web and worker roles (transaction mode)."""
    directory = run.rundir / "pgbouncer"
    directory.mkdir()
    (directory / "userlist.txt").write_text('"postgres" ""\n')
    config = directory / "pgbouncer.ini"
    config.write_text(
        "[databases]\n"
        f"{layout.DATABASE} = host=127.0.0.1 port={layout.POSTGRES_PORT} dbname={layout.DATABASE}"
        " user=postgres\n"
        "[pgbouncer]\n"
        f"listen_addr = {run.data}\n"
        f"listen_port = {layout.PGBOUNCER_PORT}\n"
        "unix_socket_dir =\n"
        "auth_type = trust\n"
        f"auth_file = {directory / 'userlist.txt'}\n"
        f"pool_mode = {run.pool_mode}\n"
        "max_client_conn = 1000\n"
        "default_pool_size = 40\n"
        "ignore_startup_parameters = extra_float_digits,options\n"
    )
    shutil.chown(directory, DATABASE_USER, DATABASE_USER)
    for path in directory.iterdir():
        shutil.chown(path, DATABASE_USER, DATABASE_USER)
    command = run.network["data"].exec(
        *as_database_user(find("pgbouncer") or "pgbouncer", str(config))
    )
    run.processes.start(
        Spec("data/pgbouncer", command, log=run.logdir / "pgbouncer.log", restart=True)
    )
    url = f"postgresql://postgres@{run.data}:{layout.PGBOUNCER_PORT}/{layout.DATABASE}"

    def answers() -> bool:
        with psycopg.connect(url, connect_timeout=2) as connection:
            return connection.execute("SELECT 1").fetchone() == (1,)

    wait_for("PgBouncer", answers, 30)


def start_redis(run: Run) -> None:
    """Redis without persistence: killed, it comes back (supervised) empty."""
    workdir = run.rundir / "redis"
    workdir.mkdir()
    command = run.network["data"].exec(
        "redis-server",
        "--bind",
        run.data,
        "127.0.0.1",
        "--port",
        str(layout.REDIS_PORT),
        "--save",
        "",
        "--appendonly",
        "no",
        "--protected-mode",
        "no",
        "--dir",
        str(workdir),
    )
    run.processes.start(Spec("data/redis", command, log=run.logdir / "redis.log", restart=True))
    import redis

    wait_for("Redis", lambda: redis.Redis.from_url(run.broker_url()).ping(), 30)


def start_s3(run: Run) -> None:
    """moto on the data host's loopback, behind the gate that can refuse writes."""
    host = run.network["data"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    moto = host.exec(str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(layout.MOTO_PORT))
    run.processes.start(Spec("data/moto", moto, env=env, log=run.logdir / "moto.log", restart=True))
    gate = host.exec(
        sys.executable,
        "-m",
        "tests.soak.s3gate",
        host.address,
        str(layout.S3_PORT),
        str(layout.MOTO_PORT),
        str(run.s3_full_flag),
    )
    run.processes.start(
        Spec("data/s3gate", gate, env=env, cwd=ROOT, log=run.logdir / "s3gate.log", restart=True)
    )
    wait_for("moto behind the gate", lambda: s3_client(run).list_buckets() is not None, 60)
    s3_client(run).create_bucket(Bucket=layout.BUCKET)


def s3_environ(run: Run) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": run.s3_endpoint(),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }


def s3_client(run: Run) -> Any:
    import boto3
    from botocore.config import Config

    env = s3_environ(run)
    return boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
        config=Config(connect_timeout=5, read_timeout=120, retries={"max_attempts": 3}),
    )


def render_nginx(run: Run, workdir: Path) -> str:
    """deploy/nginx/nginx.conf with two upstream web hosts, on the edge's address."""
    text = NGINX_CONFIG.read_text()
    web1, web2 = run.network["web1"].address, run.network["web2"].address
    edge = run.network["edge"].address
    exact = {
        "server web:8000;": f"server {web1}:{layout.WEB_PORT};\n"
        f"        server {web2}:{layout.WEB_PORT};",
        "listen 8080 default_server;": f"listen {edge}:{layout.PUBLIC_PORT} default_server;",
        "listen 8081 default_server;": f"listen {edge}:{layout.INTERNAL_PORT} default_server;",
        # Two worker processes are plenty for the soak's rate on a 2-core machine.
        "worker_processes auto;": "worker_processes 2;",
    }
    for old, new in exact.items():
        assert text.count(old) == 1, f"{NGINX_CONFIG} no longer has exactly one '{old}'"
        text = text.replace(old, new)
    return text.replace(" /tmp/", f" {workdir}/")


def start_nginx(run: Run) -> None:
    workdir = run.rundir / "nginx"
    workdir.mkdir()
    config = workdir / "nginx.conf"
    config.write_text(render_nginx(run, workdir))
    binary = find("nginx") or "nginx"
    command = run.network["edge"].exec(
        binary, "-e", "stderr", "-p", str(workdir), "-c", str(config), "-g", "daemon off;"
    )
    run.processes.start(Spec("edge/nginx", command, log=run.logdir / "nginx.log", restart=True))
    wait_for("nginx", lambda: httpx.get(run.public_url() + "/nothing", timeout=2).status_code, 30)


def start_simulator(run: Run, seed: int, faults: dict[str, float]) -> None:
    """Rivya on its own host, delivering through the edge's public port, faults on."""
    host = run.network["rivya"]
    command = host.exec(
        str(BIN / "rivya-hooks"),
        "simulate",
        "--host",
        host.address,
        "--port",
        str(layout.SIMULATOR_PORT),
        "--api-key",
        run.api_key,
        "--signing-secret",
        run.webhook_secret,
        "--deliver-to",
        f"{run.public_url()}/webhooks/rivya",
        "--queued-seconds",
        "0.5",
        "--processing-seconds",
        "2",
        "--failure-ratio",
        "0.1",
        "--outputs",
        "1",
        "--output-bytes",
        "65536",
        # Rivya retries for days. Faults overlap (a restart inside a read-only spell while
        # the edge is cut off), so retries span ten minutes, longer than any overlap of the
        # schedule, and wait at most 30 s so the settle is not spent waiting for one.
        "--delivery-attempts",
        "24",
        "--delivery-backoff-max",
        "30",
        "--seed",
        str(seed),
        "--quiet",
        *[arg for name, value in faults.items() for arg in (f"--{name}", str(value))],
    )
    env = dict(os.environ)
    run.processes.start(
        Spec("rivya/simulator", command, env=env, cwd=ROOT, log=run.logdir / "simulator.log")
    )
    wait_for(
        "the simulator",
        lambda: httpx.get(run.simulator_url() + "/_sim/state", timeout=2).status_code == 200,
        30,
    )
