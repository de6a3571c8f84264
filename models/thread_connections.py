"""One DBAPI connection per thread, opened on first use and kept until it fails.

For a statement that runs on every request: checking a connection out of SQLAlchemy's pool
and back in costs more CPU than the statement's own round trip. A thread that keeps its own
connection (and cursor) skips that, and a statement psycopg prepared on it stays prepared.
A thread that ends takes its connection with it: the connection is closed when the thread's
slot is freed, so short-lived threads (a development server's, a test's) leave none open.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from typing import Any

from sqlalchemy import Engine


class Held:
    """A thread's connection and the one cursor it runs its statements on."""

    __slots__ = ("__weakref__", "close", "connection", "cursor")

    def __init__(self, connection: Any, errors: type[Exception]) -> None:
        self.connection = connection
        self.cursor = connection.cursor()
        # Runs once: when dropped, when everything is closed, or when the thread's slot is
        # freed. It holds the connection, never this object, so the object can be freed.
        self.close = weakref.finalize(self, _close_quietly, connection, errors)


def _close_quietly(connection: Any, errors: type[Exception]) -> None:
    # A connection that failed is closed to be forgotten: its own error says nothing more.
    with contextlib.suppress(errors):
        connection.close()


class ThreadConnections:
    """Each thread's own DBAPI connection, opened through `engine` (its connect settings)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._errors: type[Exception] = engine.dialect.loaded_dbapi.Error
        self._local = threading.local()
        self._all: weakref.WeakSet[Held] = weakref.WeakSet()
        self._lock = threading.Lock()

    def get(self) -> Held:
        """Return this thread's connection, opening it if it has none; raises the DBAPI error."""
        held: Held | None = getattr(self._local, "held", None)
        if held is not None:
            return held
        # Through the engine, so the dialect's connect-time setup (autocommit, psycopg's
        # prepare threshold under a transaction pooler) is applied; then detached, so the
        # pool neither counts it nor hands it to another thread.
        pooled = self._engine.raw_connection()
        pooled.detach()
        held = Held(pooled.dbapi_connection, self._errors)
        with self._lock:
            self._all.add(held)
        self._local.held = held
        return held

    def drop(self, held: Held) -> None:
        """Close this thread's connection; its next get() opens a new one."""
        if getattr(self._local, "held", None) is held:
            del self._local.held
        held.close()

    def close(self) -> None:
        """Close every thread's connection (at shutdown: threads still using one fail)."""
        with self._lock:
            everything = list(self._all)
        for held in everything:
            held.close()
