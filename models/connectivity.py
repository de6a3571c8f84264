"""Why the database cannot be used, told so an operator knows what to do next.

A server that is down, a database that does not exist and credentials the server refuses
all surface from the driver as one error type, and PostgreSQL gives connection errors no
SQLSTATE. They are told apart by asking again, not by reading the (translatable) message:
is anything listening at the host and port, and does the server's maintenance database
accept the same credentials? Messages carry the database's own first error line, never
the password.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from models.migrate import current_revision, head_revision

# The database every PostgreSQL server has; reaching it proves the server and credentials.
MAINTENANCE_DATABASE = "postgres"
PROBE_TIMEOUT_SECONDS = 5


@dataclass(frozen=True)
class DatabaseProblem:
    """One line saying what is wrong and one saying what to do."""

    cause: str
    next_step: str


def connection_problem(engine: Engine) -> DatabaseProblem | None:
    """Return why a connection to the engine's database fails, or None if it connects."""
    try:
        with engine.connect():
            return None
    except SQLAlchemyError as exc:
        return _diagnose(engine.url, exc)


def schema_problem(engine: Engine) -> DatabaseProblem | None:
    """Return why a reachable database does not match this code's migrations, or None."""
    current, head = current_revision(engine), head_revision()
    if current == head:
        return None
    if current is None:
        return DatabaseProblem(
            f"the database {_name(engine.url)} has no tables yet",
            "run `rivya-hooks db upgrade` (the Procfile's release role)",
        )
    return DatabaseProblem(
        f"the database {_name(engine.url)} is at revision {current}, this code expects {head}",
        "run `rivya-hooks db upgrade` (the Procfile's release role) with this code",
    )


def first_line(exc: BaseException, url: URL) -> str:
    """Return the driver's first error line, with the URL's password blotted out."""
    original = getattr(exc, "orig", None) or exc
    lines = str(original).strip().splitlines()
    line = lines[0].strip() if lines else type(original).__name__
    if url.password:
        line = line.replace(str(url.password), "***")
    return line


def _diagnose(url: URL, exc: SQLAlchemyError) -> DatabaseProblem:
    line = first_line(exc, url)
    if url.get_backend_name() != "postgresql":
        return DatabaseProblem(
            f"cannot open the database {_name(url)}: {line}",
            "check the path in DATABASE_URL and that this user may write there",
        )
    server = f"{url.host or 'localhost'}:{url.port or 5432}"
    if not _listening(url):
        return DatabaseProblem(
            f"no database server answers at {server}: {line}",
            "start the database server, or fix the host and port in DATABASE_URL",
        )
    if _maintenance_database_accepts(url):
        return DatabaseProblem(
            f"the database server at {server} has no database {_name(url)}: {line}",
            f"create it (createdb {url.database}), then run `rivya-hooks db upgrade`",
        )
    return DatabaseProblem(
        f"the database server at {server} refused the connection: {line}",
        "check the user and password in DATABASE_URL",
    )


def _listening(url: URL) -> bool:
    if url.host is None or url.host.startswith("/"):
        return True  # a Unix socket: the driver's own error says whether it is there
    try:
        with socket.create_connection((url.host, url.port or 5432), PROBE_TIMEOUT_SECONDS):
            return True
    except OSError:
        return False


def _maintenance_database_accepts(url: URL) -> bool:
    if url.database == MAINTENANCE_DATABASE:
        return False
    probe = create_engine(
        url.set(database=MAINTENANCE_DATABASE),
        connect_args={"connect_timeout": PROBE_TIMEOUT_SECONDS},
        poolclass=NullPool,
    )
    try:
        with probe.connect():
            return True
    except SQLAlchemyError:
        return False
    finally:
        probe.dispose()


def _name(url: URL) -> str:
    return repr(url.database or "")
