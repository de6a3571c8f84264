"""The database: typed SQLAlchemy models, engine and session helpers, Alembic migrations."""

from models.base import Base
from models.events import (
    AttemptOutcome,
    EventAttempt,
    EventSource,
    EventStatus,
    WebhookEvent,
)
from models.feed import FeedCounter
from models.generations import Generation, GenerationOutput, GenerationStatus
from models.reconcile import ReconcileState
from models.tombstones import EventTombstone

__all__ = [
    "AttemptOutcome",
    "Base",
    "EventAttempt",
    "EventSource",
    "EventStatus",
    "EventTombstone",
    "FeedCounter",
    "Generation",
    "GenerationOutput",
    "GenerationStatus",
    "ReconcileState",
    "WebhookEvent",
]
