"""Which database errors are the database being unavailable: retry later, the work is sound.

Decided by the SQLSTATE the server sent, not by the DBAPI's exception class: a failover onto
a standby raises InternalError (25006 read_only_sql_transaction) and a shutting-down server
AdminShutdown (57P01), neither an OperationalError, yet both pass once the database is back.
Without a SQLSTATE (the connection failed before the server said anything, SQLite's
"database is locked") the class decides, as it always has.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

# SQLSTATE classes (two characters) and codes whose error passes when the database recovers.
TRANSIENT_SQLSTATE_CLASSES = (
    "08",  # connection exception
    "53",  # insufficient resources: disk full, out of memory, too many connections
)
TRANSIENT_SQLSTATES = frozenset(
    {
        "25006",  # read_only_sql_transaction: a standby, or a primary demoted by a failover
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "57P01",  # admin_shutdown
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now: starting up, or in recovery
        "57P05",  # idle_session_timeout: the server ended an idle pooled session
    }
)


def sqlstate(exc: BaseException) -> str | None:
    """Return the SQLSTATE the server sent with the error, if any."""
    original = exc.orig if isinstance(exc, DBAPIError) else exc
    code = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
    return code if isinstance(code, str) and code else None


def is_transient(exc: BaseException) -> bool:
    """Return True if the error is the database being unavailable, so retrying later helps."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    code = sqlstate(exc)
    if code is not None:
        return code in TRANSIENT_SQLSTATES or code.startswith(TRANSIENT_SQLSTATE_CLASSES)
    return isinstance(exc, OperationalError | InterfaceError)
