"""Where the real PostgreSQL and Redis are, and what to do when they, or a tool, are not there."""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn
from urllib.parse import urlsplit

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def reachable(url: str) -> bool:
    """Return True if something accepts TCP connections at the URL's host and port."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), 1):
            return True
    except OSError:
        return False


def absent(in_ci: str, elsewhere: str) -> NoReturn:
    """Stop a test that lacks something it needs: fail it in CI, where every test must run,
    skip it elsewhere; each message names what is missing and how to get it."""
    if IN_CI:
        pytest.fail(in_ci)
    pytest.skip(elsewhere)


def require(name: str, url: str) -> None:
    """Skip the test when the service is absent, or fail it in CI, naming the service."""
    if reachable(url):
        return
    message = f"{name} is not reachable at {urlsplit(url).netloc}"
    absent(
        f"{message}; CI must run this test (.ci/run starts the service)",
        f"{message}; start it to run this test",
    )


def installed(name: str, how: str, installed_in_ci_by: str, also_in: str | None = None) -> str:
    """Return the path of a program a test runs; absent() when it is not installed."""
    found = shutil.which(name) or (shutil.which(name, path=also_in) if also_in else None)
    if found is None:
        message = f"{name} is not installed ({how})"
        absent(f"{message}; {installed_in_ci_by}", message)
    return found


@contextmanager
def new_postgres_database(prefix: str) -> Iterator[str]:
    """Create an empty PostgreSQL database named after `prefix`; yield its URL, then drop it."""
    require("PostgreSQL", POSTGRES_ADMIN_URL)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
