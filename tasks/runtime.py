"""What processing, the sweeper and the reconciler work with: one object per process.

Settings, the engine and session factory, the Rivya client, the download client, storage,
the process's identity and its time limits. The Celery app factory makes one and hangs it
on the app (each forked child resets it, so no connection is ever shared across processes);
the CLI and the tests make their own. Resources are built on first use and kept.
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass

import httpx
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from models.db import make_engine, make_session_factory
from rivyahooks_foundation.settings import Settings, SettingsError
from rivyahooks_protocol.client import RivyaClient
from rivyahooks_protocol.host_pools import PoolPerHost
from storage import Storage, open_storage

# Between Celery's hard time limit killing an attempt and its last renewed lease: the kill is
# not instantaneous, and another claim must never start while the first still runs.
LEASE_GRACE_SECONDS = 2.0


@dataclass(frozen=True)
class TimeLimits:
    """How long one processing attempt may take, and how long its claim holds unrenewed."""

    downloads: float  # every download of the attempt ends by then (a total deadline)
    soft: float  # Celery raises SoftTimeLimitExceeded: recorded as a failed attempt
    hard: float  # Celery kills the process running the attempt
    lease: float  # an unrenewed claim lapses; the sweeper or the next claim takes over
    renewals_end: float  # the lease is renewed no later than this into the attempt

    @property
    def renew_every(self) -> float:
        """Return how often the running attempt renews its lease: thrice per lease."""
        return self.lease / 3

    @classmethod
    def from_settings(cls, settings: Settings) -> TimeLimits:
        """Return the limits, or raise SettingsError when they do not fit the broker's window."""
        hard = float(settings.process_time_limit_seconds)
        limits = cls(
            downloads=hard * 0.8,
            soft=hard * 0.9,
            hard=hard,
            lease=float(settings.process_lease_seconds),
            renewals_end=hard + LEASE_GRACE_SECONDS,
        )
        # Past the visibility timeout the broker hands the message to a second worker; the
        # first must be finished (or killed, its renewals over) by then.
        if limits.renewals_end >= settings.task_visibility_timeout_seconds:
            raise SettingsError(
                f"PROCESS_TIME_LIMIT_SECONDS ({settings.process_time_limit_seconds}) plus "
                f"{LEASE_GRACE_SECONDS:g} s must stay below TASK_VISIBILITY_TIMEOUT_SECONDS "
                f"({settings.task_visibility_timeout_seconds}): lower the one or raise the other"
            )
        return limits


def rivya_client(settings: Settings) -> RivyaClient:
    """Return a Rivya API client configured by the settings (the key may be empty)."""
    return RivyaClient(
        settings.rivya_api_base,
        settings.rivya_api_key,
        timeout_seconds=settings.rivya_http_timeout_seconds,
        max_attempts=settings.rivya_max_attempts,
    )


def download_client(settings: Settings) -> httpx.Client:
    """Return an HTTP client for result URLs: no API key, no redirects."""
    return httpx.Client(
        follow_redirects=False,
        timeout=httpx.Timeout(settings.rivya_http_timeout_seconds),
        transport=PoolPerHost(),
    )


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.limits = TimeLimits.from_settings(settings)
        self._engine: Engine | None = None
        self._sessions: sessionmaker[Session] | None = None
        self._rivya: RivyaClient | None = None
        self._downloads: httpx.Client | None = None
        self._outbound: httpx.Client | None = None
        # The outbound role runs its tasks on threads: the first ones start together, and each
        # must not build an engine or client of its own that the next one then drops unclosed.
        self._building = threading.RLock()

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            with self._building:
                if self._engine is None:
                    self._engine = make_engine(
                        self.settings.database_url,
                        transaction_pooling=self.settings.transaction_pooling,
                        data_keys=self.settings.data_encryption_keys,
                    )
        return self._engine

    @property
    def sessions(self) -> sessionmaker[Session]:
        if self._sessions is None:
            with self._building:
                if self._sessions is None:
                    self._sessions = make_session_factory(self.engine)
        return self._sessions

    @property
    def rivya(self) -> RivyaClient:
        """Return this process's Rivya API client (kept: its connections are reused)."""
        if self._rivya is None:
            with self._building:
                if self._rivya is None:
                    self._rivya = rivya_client(self.settings)
        return self._rivya

    @property
    def downloads(self) -> httpx.Client:
        """Return this process's client for result URLs (it never carries the API key)."""
        if self._downloads is None:
            with self._building:
                if self._downloads is None:
                    self._downloads = download_client(self.settings)
        return self._downloads

    @property
    def outbound(self) -> httpx.Client:
        """Return this process's client for app endpoints (no redirects, shared by threads)."""
        if self._outbound is None:
            with self._building:
                if self._outbound is None:
                    self._outbound = httpx.Client(
                        follow_redirects=False,
                        timeout=httpx.Timeout(self.settings.outbound_timeout_seconds),
                        transport=PoolPerHost(),
                    )
        return self._outbound

    @property
    def storage(self) -> Storage:
        """Return this process's storage (open_storage keeps one per process)."""
        return open_storage(self.settings)

    @property
    def worker(self) -> str:
        """Return host:pid, the identity attempts record (read each time: forks change it)."""
        return f"{socket.gethostname()}:{os.getpid()}"

    def after_fork(self) -> None:
        """Forget the parent's pool (close=False: its sockets belong to the parent)."""
        # A lock is copied in whatever state the fork found it.
        self._building = threading.RLock()
        if self._engine is not None:
            self._engine.dispose(close=False)
        # Inherited HTTP clients would share the parent's sockets: drop, never close, them.
        self._rivya = None
        self._downloads = None
        self._outbound = None

    def close(self) -> None:
        for client in (self._rivya, self._downloads, self._outbound):
            if client is not None:
                client.close()
        self._rivya = None
        self._downloads = None
        self._outbound = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
            self._sessions = None
