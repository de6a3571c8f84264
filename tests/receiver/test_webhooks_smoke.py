"""The receiver's main path, end to end through the Flask test client."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models.events import EventSource, EventStatus, WebhookEvent
from tests.conftest import make_event, signed_delivery


def test_genuine_delivery_is_stored_due_for_the_relay(
    client, sessions: sessionmaker[Session]
) -> None:
    event = make_event()
    body, headers = signed_delivery(event)
    response = client.post("/webhooks/rivya", data=body, headers=headers)
    assert response.status_code == 202
    with sessions() as session:
        row = session.scalars(select(WebhookEvent)).one()
    assert row.event_id == event["id"]
    assert row.task_id == event["data"]["id"]
    assert row.body == body
    assert row.source is EventSource.WEBHOOK
    assert row.status is EventStatus.RECEIVED
    assert row.next_attempt_at == row.received_at


def test_one_changed_byte_is_rejected(client, sessions: sessionmaker[Session]) -> None:
    body, headers = signed_delivery(make_event())
    tampered = body.replace(b"img-1", b"img-2")
    response = client.post("/webhooks/rivya", data=tampered, headers=headers)
    assert response.status_code == 401
    assert response.json == {"error": {"code": "signature_invalid"}}
    with sessions() as session:
        assert session.scalars(select(WebhookEvent)).all() == []
