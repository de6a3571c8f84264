"""The database: typed SQLAlchemy models, engine and session helpers, Alembic migrations."""

from models import event_pages  # noqa: F401 (declares the console's indexes)
from models.apps import App
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
from models.outbound import OutboundAttempt, OutboundCursor, OutboundDelivery, OutboundMessage
from models.reconcile import ReconcileState

__all__ = [
    "App",
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
    "OutboundAttempt",
    "OutboundCursor",
    "OutboundDelivery",
    "OutboundMessage",
    "ReconcileState",
    "WebhookEvent",
]
