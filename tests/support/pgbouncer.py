"""A throwaway PgBouncer in transaction pooling in front of the test's PostgreSQL database."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from tests.support import services
from tests.support.eventually import eventually
from tests.support.processes import free_port

# Two server connections open from the start (see _open_two_server_connections), handed out
# in turn: consecutive transactions of one client land on different server connections, as
# they do on a busy production pooler, so anything that relies on session state (a prepared
# statement, LISTEN) fails every time, not now and then.
INI = """\
[databases]
{database} = host={host} port={server_port} dbname={database} user={user}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {workdir}/users.txt
pool_mode = transaction
default_pool_size = 4
min_pool_size = 2
server_round_robin = 1
"""


@contextmanager
def pgbouncer(postgres_url: str, workdir: Path) -> Iterator[str]:
    """Yield the URL of `postgres_url`'s database through a PgBouncer of the test's own."""
    program = services.installed(
        "pgbouncer",
        "Debian's pgbouncer package",
        ".ci/run installs it",
        also_in="/usr/sbin",
    )
    url = make_url(postgres_url)
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "users.txt").write_text(f'"{url.username}" ""\n')
    ini = workdir / "pgbouncer.ini"
    ini.write_text(
        INI.format(
            database=url.database,
            host=url.host,
            server_port=url.port or 5432,
            user=url.username,
            port=port,
            workdir=workdir,
        )
    )
    # PgBouncer refuses to run as root: there it drops to nobody, who must read the files.
    as_user = ["-u", "nobody"] if os.geteuid() == 0 else []
    for path in (workdir, ini, workdir / "users.txt"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    log = workdir / "pgbouncer.log"
    with log.open("wb") as output:
        process = subprocess.Popen([program, *as_user, str(ini)], stdout=output, stderr=output)
    bounced = url.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)

    def listening() -> bool:
        if process.poll() is not None:
            said = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"pgbouncer exited with {process.returncode}: {said}")
        return services.reachable(bounced)

    try:
        eventually(listening, 10, what=f"pgbouncer to listen on {port}")
        _open_two_server_connections(bounced)
        yield bounced
    finally:
        process.terminate()
        process.wait(10)


def _open_two_server_connections(url: str) -> None:
    # Two transactions open at once need two server connections; both stay in the pool.
    # (min_pool_size gets there too, but only when PgBouncer's janitor next runs.)
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    first = psycopg.connect(conninfo)
    second = psycopg.connect(conninfo)
    try:
        pids = {c.execute("SELECT pg_backend_pid()").fetchone() for c in (first, second)}
        assert len(pids) == 2, pids
        first.commit()
        second.commit()
    finally:
        first.close()
        second.close()
