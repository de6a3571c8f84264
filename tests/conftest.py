"""Shared fixtures: a migrated database (PostgreSQL when it answers, else SQLite), a broker,
settings pointing at them, and the Flask app.

Every test gets empty tables. Tests that need PostgreSQL or Redis themselves ask for the
`postgres_url` / `redis_url` fixtures, which skip with the reason when the service is absent
and fail in CI.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks.webhooks import Webhook

from models.base import Base
from models.db import make_engine, make_session_factory
from models.migrate import upgrade
from receiver import create_app
from rivyahooks_foundation.settings import Settings
from rivyahooks_protocol import contract, signatures
from storage import storage_cache_clear
from tests.support import services
from tests.support.s3server import S3Server, moto_reset, s3_server

SECRET = "whsec_" + base64.b64encode(b"rivya-hooks test secret, 32 byte").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"another secret for rotation tests").decode()


def pytest_report_header(config: pytest.Config) -> list[str]:
    pg = "reachable" if services.reachable(services.POSTGRES_ADMIN_URL) else "NOT reachable"
    rd = "reachable" if services.reachable(services.REDIS_URL) else "NOT reachable"
    return [
        f"rivya-hooks: PostgreSQL {pg}, Redis {rd}, CI={services.IN_CI}",
        "rivya-hooks: tests needing an absent service are skipped (failed in CI)",
    ]


# --- databases ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session."""
    with services.new_postgres_database("rivyahooks_test") as url:
        upgrade(url)
        yield url


@pytest.fixture
def empty_postgres() -> Iterator[str]:
    """A new PostgreSQL database that no migration has touched."""
    with services.new_postgres_database("rivyahooks_empty") as url:
        yield url


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated SQLite database file for this test session."""
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def database_url(request: pytest.FixtureRequest) -> str:
    """PostgreSQL when it answers (always in CI), SQLite otherwise."""
    if services.IN_CI or services.reachable(services.POSTGRES_ADMIN_URL):
        return str(request.getfixturevalue("postgres_url"))
    return str(request.getfixturevalue("sqlite_url"))


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def empty_tables(engine: Engine) -> None:
    with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())


@pytest.fixture
def postgres_engine(postgres_url: str) -> Iterator[Engine]:
    """An engine on this session's PostgreSQL database, tables emptied; for tests that need
    PostgreSQL itself whatever `database_url` chose."""
    engine = make_engine(postgres_url)
    empty_tables(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    """A session factory on empty tables."""
    empty_tables(engine)
    return make_session_factory(engine)


# --- brokers -----------------------------------------------------------------------------


@pytest.fixture
def redis_url() -> str:
    """An empty database on the real Redis."""
    services.require("Redis", services.REDIS_URL)
    import redis

    url = f"{services.REDIS_URL}/9"
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    return url


@pytest.fixture
def broker_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Redis when it answers (always in CI), the embedded SQLite transport otherwise."""
    if services.IN_CI or services.reachable(services.REDIS_URL):
        return str(request.getfixturevalue("redis_url"))
    return f"sqla+sqlite:///{tmp_path / 'broker.sqlite3'}"


# --- object storage ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_server_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """moto's standalone S3 server, one process for the whole session."""
    with s3_server(log=tmp_path_factory.mktemp("moto") / "moto.log") as server:
        yield server


@pytest.fixture
def s3(s3_server_session: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    """The S3 server, emptied, with this process's AWS variables pointing at it."""
    moto_reset(s3_server_session)
    for name, value in s3_server_session.environ().items():
        monkeypatch.setenv(name, value)
    # Storage objects are kept per process and URL; the next one must read these variables.
    storage_cache_clear()
    yield s3_server_session
    storage_cache_clear()


@pytest.fixture(params=["file", "s3"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """File storage, or object storage on moto's S3 server: a test asking for it runs on both.

    The S3 server's variables are in this process's environment, so children inherit them.
    """
    if request.param == "file":
        yield f"file://{tmp_path / 'results'}"
    else:
        s3: S3Server = request.getfixturevalue("s3")
        yield s3.storage_url()


# --- settings and app --------------------------------------------------------------------


@pytest.fixture
def settings(
    database_url: str, broker_url: str, sessions: sessionmaker[Session], tmp_path: Path
) -> Settings:
    return Settings(
        database_url=database_url,
        broker_url=broker_url,
        webhook_secrets=(SECRET,),
        storage_url=f"file://{tmp_path / 'results'}",
    )


def close_app(app: Flask) -> None:
    """Stop what create_app started: the counter's thread, the pool, the inbox's pool."""
    app.extensions["delivery_counter"].stop()
    app.extensions["rivyahooks"].engine.dispose()
    app.extensions["rivyahooks"].inbox.close()


@pytest.fixture
def make_app() -> Iterator[Callable[[Settings], Flask]]:
    """Return create_app for a test; every app it made is closed when the test ends.

    Closed means the delivery counter's thread stopped too: one left running would try to
    flush at exit into a database the suite has dropped by then.
    """
    made: list[Flask] = []

    def make(settings: Settings) -> Flask:
        app = create_app(settings)
        made.append(app)
        return app

    yield make
    for app in made:
        close_app(app)


@pytest.fixture
def app(settings: Settings, make_app: Callable[[Settings], Flask]) -> Flask:
    return make_app(settings)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


# --- deliveries --------------------------------------------------------------------------


def make_event(
    task_id: str | None = None,
    event_type: str = contract.EVENT_GENERATION_SUCCEEDED,
    event_id: str | None = None,
) -> dict[str, Any]:
    """Return an event envelope as Rivya sends it (the assumed shape of the contract)."""
    task_id = task_id or f"task_{uuid.uuid4().hex}"
    return {
        "id": event_id or f"evt_{uuid.uuid4().hex}",
        "type": event_type,
        "api_version": contract.API_VERSION,
        "created_at": "2026-05-11T10:00:00.000Z",
        "object": "event",
        "data": {"id": task_id, "status": event_type.split(".")[-1], "model": "img-1"},
    }


def signed_delivery(
    event: dict[str, Any] | bytes,
    *,
    secret: str = SECRET,
    scheme: str = contract.SCHEME_STANDARD,
    timestamp: int | None = None,
    webhook_id: str | None = None,
) -> tuple[bytes, dict[str, str]]:
    """Return (body, headers) of a correctly signed delivery."""
    body = event if isinstance(event, bytes) else json.dumps(event).encode()
    if webhook_id is None:
        webhook_id = event["id"] if isinstance(event, dict) else f"evt_{uuid.uuid4().hex}"
    headers = signatures.sign(scheme, [secret], body, webhook_id=webhook_id, timestamp=timestamp)
    headers["Content-Type"] = "application/json"
    return body, headers


def reference_signed(event: dict[str, Any], secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
    """Return (body, headers) of a delivery signed by the Standard Webhooks reference library,
    an independent oracle for our verifier (and how the deployment tests reach the kit)."""
    body = json.dumps(event)
    now = dt.datetime.now(dt.UTC)
    headers = {
        "Content-Type": "application/json",
        "webhook-id": event["id"],
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(event["id"], now, body),
    }
    return body.encode(), headers
