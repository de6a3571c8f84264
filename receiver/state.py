"""What the web process builds once at start and every request shares."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from models.inbox import InboxWriter
from rivyahooks.rivya.signatures import Verifier
from rivyahooks.settings import Settings


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


def state() -> ReceiverState:
    """Return the current app's shared state."""
    value: ReceiverState = current_app.extensions["rivyahooks"]
    return value
