"""Apps, outbound messages, deliveries and attempts stored straight in the database."""

from __future__ import annotations

import datetime as dt
import secrets

from sqlalchemy.orm import Session

from models.apps import App, EventType, new_app_id, new_secret
from models.base import utcnow
from models.outbound import (
    DeliveryStatus,
    OutboundAttempt,
    OutboundDelivery,
    OutboundMessage,
    new_message_id,
)


def add_app(session: Session, name: str, *, enabled: bool = True) -> App:
    app = App(
        id=new_app_id(),
        name=name,
        url=f"https://{name}.example.com/hooks",
        events=[EventType.RESULT_READY.value],
        secret=new_secret().encode(),
        enabled=enabled,
        disabled_reason=None if enabled else "disabled by an operator",
    )
    session.add(app)
    session.flush()
    return app


def add_message(session: Session, created_at: dt.datetime | None = None) -> OutboundMessage:
    message = OutboundMessage(
        id=new_message_id(),
        type=EventType.RESULT_READY.value,
        task_id="task_" + secrets.token_hex(6),
        feed_position=1,
        payload=b"{}",
        created_at=created_at or utcnow(),
    )
    session.add(message)
    session.flush()
    return message


def add_delivery(
    session: Session,
    message: OutboundMessage,
    app: App,
    status: DeliveryStatus,
    **values: object,
) -> OutboundDelivery:
    delivery = OutboundDelivery(
        message_id=message.id, app_id=app.id, status=status, attempts=0, **values
    )
    session.add(delivery)
    session.flush()
    return delivery


def add_attempt(
    session: Session, delivery: OutboundDelivery, attempted_at: dt.datetime, outcome: str
) -> None:
    session.add(
        OutboundAttempt(
            delivery_id=delivery.id,
            app_id=delivery.app_id,
            number=1,
            attempted_at=attempted_at,
            status_code=200 if outcome == "delivered" else 500,
            latency_ms=12,
            outcome=outcome,
        )
    )
    session.flush()
