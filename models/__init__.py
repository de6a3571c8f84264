"""The database: typed SQLAlchemy models, engine and session helpers, Alembic migrations."""

from models.base import Base
from models.events import (
    AttemptOutcome,
    EventAttempt,
    EventSource,
    EventStatus,
    WebhookEvent,
)
from models.generations import Generation, GenerationOutput, GenerationStatus
from models.reconcile import ReconcileState

__all__ = [
    "AttemptOutcome",
    "Base",
    "EventAttempt",
    "EventSource",
    "EventStatus",
    "Generation",
    "GenerationOutput",
    "GenerationStatus",
    "ReconcileState",
    "WebhookEvent",
]
