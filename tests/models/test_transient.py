"""Which database errors mean "retry later": by SQLSTATE, and by class only without one."""

from __future__ import annotations

import psycopg.errors
import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError, InternalError, OperationalError

from models.transient import is_transient


def wrapped(error: type[DBAPIError], original: Exception) -> DBAPIError:
    return error("UPDATE webhook_events", {}, original)


@pytest.mark.parametrize(
    "error",
    [
        wrapped(InternalError, psycopg.errors.ReadOnlySqlTransaction()),
        wrapped(OperationalError, psycopg.errors.AdminShutdown()),
        wrapped(OperationalError, psycopg.errors.CannotConnectNow()),
        wrapped(OperationalError, psycopg.errors.SerializationFailure()),
        wrapped(OperationalError, psycopg.errors.DeadlockDetected()),
        wrapped(OperationalError, psycopg.errors.DiskFull()),
        wrapped(OperationalError, psycopg.errors.ConnectionFailure()),
        # Without a SQLSTATE (no answer from the server, SQLite's lock): the class decides.
        wrapped(OperationalError, psycopg.OperationalError("connection refused")),
        wrapped(OperationalError, Exception("database is locked")),
    ],
)
def test_the_database_being_unavailable_is_transient(error: DBAPIError) -> None:
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        wrapped(IntegrityError, psycopg.errors.UniqueViolation()),
        wrapped(InternalError, psycopg.errors.DataCorrupted()),
        wrapped(DBAPIError, psycopg.errors.StringDataRightTruncation()),
        ValueError("not a database error"),
    ],
)
def test_a_refused_statement_is_not_transient(error: Exception) -> None:
    assert not is_transient(error)


def test_an_invalidated_connection_is_transient() -> None:
    error = DBAPIError(
        "SELECT 1", {}, psycopg.errors.UniqueViolation(), connection_invalidated=True
    )
    assert is_transient(error)
