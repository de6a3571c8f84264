"""Per-process resources of the worker: settings, the engine, the session factory.

The Celery app factory makes one Runtime and hangs it on the app; each forked child resets
it, so no database connection is ever shared across processes.
"""

from __future__ import annotations

import httpx
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from models.db import make_engine, make_session_factory
from rivyahooks.rivya.client import RivyaClient
from rivyahooks.settings import Settings
from tasks.processing import download_client


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._engine: Engine | None = None
        self._sessions: sessionmaker[Session] | None = None
        self._rivya: RivyaClient | None = None
        self._downloads: httpx.Client | None = None

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

    @property
    def rivya(self) -> RivyaClient:
        """Return this process's Rivya API client (kept: its connections are reused)."""
        if self._rivya is None:
            self._rivya = RivyaClient.from_settings(self.settings)
        return self._rivya

    @property
    def downloads(self) -> httpx.Client:
        """Return this process's client for result URLs (it never carries the API key)."""
        if self._downloads is None:
            self._downloads = download_client(self.settings)
        return self._downloads

    def after_fork(self) -> None:
        """Forget the parent's pool (close=False: its sockets belong to the parent)."""
        if self._engine is not None:
            self._engine.dispose(close=False)
        # Inherited HTTP clients would share the parent's sockets: drop, never close, them.
        self._rivya = None
        self._downloads = None

    def close(self) -> None:
        for client in (self._rivya, self._downloads):
            if client is not None:
                client.close()
        self._rivya = None
        self._downloads = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
            self._sessions = None
