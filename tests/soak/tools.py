"""What the soak needs from the machine: root, and each program with the package that has it."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

# program -> the Debian package to install when it is missing.
PROGRAMS = {
    "ip": "iproute2",
    "nft": "nftables",
    "nginx": "nginx-light",
    "pgbouncer": "pgbouncer",
    "faketime": "faketime",
    "initdb": "postgresql",
    "pg_ctl": "postgresql",
    "psql": "postgresql-client",
    "redis-server": "redis-server",
    "setpriv": "util-linux",
}
SBIN = "/usr/sbin:/sbin"
# PostgreSQL refuses to run as root; its processes run as this existing user.
DATABASE_USER = "postgres"


def find(program: str) -> str | None:
    """Return the path of `program` (sbin included, as root has it), or None."""
    return shutil.which(program) or shutil.which(program, path=SBIN)


def missing() -> list[str]:
    """Return a line per missing requirement, each naming how to get it."""
    problems = []
    if os.geteuid() != 0:
        problems.append("the soak must run as root (it makes network namespaces)")
    for program, package in PROGRAMS.items():
        if find(program) is None:
            problems.append(f"{program} is missing: apt-get install {package}")
    moto = Path(sys.executable).parent / "moto_server"
    if not moto.exists():
        problems.append("moto_server is missing: make .venv/.installed-stamp (the test extras)")
    try:
        import pwd

        pwd.getpwnam(DATABASE_USER)
    except KeyError:
        problems.append(f"no user {DATABASE_USER!r} to run PostgreSQL: apt-get install postgresql")
    return problems
