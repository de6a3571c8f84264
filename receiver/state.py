"""What the web process builds once at start and every request shares."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from flask import current_app
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from models.inbox import InboxWriter
from rivyahooks_foundation.settings import Settings
from rivyahooks_protocol.signatures import Verifier


@dataclass(frozen=True)
class ReceiverState:
    settings: Settings
    engine: Engine
    # Stores deliveries: one statement, one round trip, on the engine's pool.
    inbox: InboxWriter
    sessions: sessionmaker[Session]
    verifier: Verifier
    # Fingerprints of the configured secrets, in the same order: stored with each event to
    # say which secret verified it, computed once rather than on every delivery.
    secret_fingerprints: tuple[str, ...]
    waiters: Waiters = field(default_factory=lambda: Waiters())


class Waiters:
    """Counts the feed's long-polls in this process: each holds one request thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0

    def try_enter(self, limit: int) -> bool:
        """Take a place if fewer than `limit` are taken; return whether it was taken."""
        with self._lock:
            if self._count >= limit:
                return False
            self._count += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self._count -= 1


def state() -> ReceiverState:
    """Return the current app's shared state."""
    value: ReceiverState = current_app.extensions["rivyahooks"]
    return value
