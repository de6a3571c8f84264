"""Engines and sessions. One engine per process, one session per request or task run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from models.encryption import Keyring
from models.sealed import use_keyring


def make_engine(
    database_url: str,
    *,
    transaction_pooling: bool = False,
    data_keys: Sequence[bytes] = (),
    **kwargs: Any,
) -> Engine:
    """Create the process's engine; SQLite gets the settings that let processes share it.

    `transaction_pooling` (DATABASE_POOLER=pgbouncer): psycopg prepares no statements, since
    the next transaction may run on a server connection that never saw them. `data_keys`
    (DATA_ENCRYPTION_KEYS) seal and open the sealed columns (models/sealed.py).
    """
    return use_keyring(_engine(database_url, transaction_pooling, **kwargs), Keyring(data_keys))


def _engine(database_url: str, transaction_pooling: bool, **kwargs: Any) -> Engine:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.get_backend_name() == "postgresql" and url.drivername == "postgresql":
        # Plain postgresql:// would pick psycopg2, which we do not install.
        url = url.set(drivername="postgresql+psycopg")
    # pool_pre_ping: a connection that died while idle (database restart, proxy cut) is
    # replaced instead of failing the next request.
    kwargs.setdefault("pool_pre_ping", True)
    if url.get_backend_name() == "postgresql":
        # Fail fast when the database is unreachable, so the receiver can answer 503 quickly.
        kwargs.setdefault("connect_args", {"connect_timeout": 5})
        if transaction_pooling:
            kwargs["connect_args"] = {**kwargs["connect_args"], "prepare_threshold": None}
    return create_engine(url, **kwargs)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the web, worker and beat processes read while one writes; busy_timeout makes a
    # writer wait for the lock instead of failing at once.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def dialect_name(executor: Session | Connection) -> str:
    """Return the name of the database a session or connection talks to."""
    if isinstance(executor, Connection):
        return executor.dialect.name
    return executor.get_bind().dialect.name


def dialect_insert(executor: Session | Connection | str, model: type[Any]) -> Any:
    """Return an INSERT for `model` that supports ON CONFLICT on this database (or dialect)."""
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = executor if isinstance(executor, str) else dialect_name(executor)
    if dialect == "postgresql":
        return postgresql.insert(model)
    if dialect == "sqlite":
        return sqlite.insert(model)
    raise RuntimeError(f"unsupported database {dialect}")


def count_by(session: Session, column: Any) -> dict[Any, int]:
    """Return row counts grouped by one column (a status, a source) of its table."""
    return {
        value: count
        for value, count in session.execute(select(column, func.count()).group_by(column)).all()
    }


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Return the session factory bound to this process's engine."""
    # expire_on_commit=False: objects stay readable after commit, e.g. to enqueue by id.
    return sessionmaker(engine, expire_on_commit=False)
