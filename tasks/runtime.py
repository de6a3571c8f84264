"""Per-process resources of the worker: settings, the engine, the session factory.

The Celery app factory makes one Runtime and hangs it on the app; each forked child resets
it, so no database connection is ever shared across processes.
"""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from models.db import make_engine, make_session_factory
from rivyahooks.settings import Settings


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._engine: Engine | None = None
        self._sessions: sessionmaker[Session] | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = make_engine(self.settings.database_url)
        return self._engine

    @property
    def sessions(self) -> sessionmaker[Session]:
        if self._sessions is None:
            self._sessions = make_session_factory(self.engine)
        return self._sessions

    def after_fork(self) -> None:
        """Forget the parent's pool (close=False: its sockets belong to the parent)."""
        if self._engine is not None:
            self._engine.dispose(close=False)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
            self._sessions = None
