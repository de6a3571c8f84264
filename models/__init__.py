"""The database: typed SQLAlchemy models, engine and session helpers, Alembic migrations."""

from models import event_pages  # noqa: F401 (declares the console's indexes)
from models.base import Base
from models.console_sessions import ConsoleLoginFailure, ConsoleSecret, ConsoleSession
from models.data_keys import DataKey
from models.delivery_counts import DeliveryCount
from models.event_keys import EventKey
from models.events import (
    AttemptOutcome,
    EventAttempt,
    EventSource,
    EventStatus,
    WebhookEvent,
)
from models.feed import FeedCounter
from models.generations import Generation, GenerationOutput, GenerationStatus
from models.operator_actions import OperatorAction
from models.reconcile import ReconcileState

__all__ = [
    "AttemptOutcome",
    "Base",
    "ConsoleLoginFailure",
    "ConsoleSecret",
    "ConsoleSession",
    "DataKey",
    "DeliveryCount",
    "EventAttempt",
    "EventKey",
    "EventSource",
    "EventStatus",
    "FeedCounter",
    "Generation",
    "GenerationOutput",
    "GenerationStatus",
    "OperatorAction",
    "ReconcileState",
    "WebhookEvent",
]
