"""What the console's tests share: an app with both tokens, a logged-in client, stored rows.

The console's tests drive it through Flask's test client and cover every refusal and every
page's content on both databases; the browser tests (tests/system/test_console_browser.py)
drive the same pages in Chromium against gunicorn.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models.apps import App, new_app_id, new_signing_key
from models.base import utcnow
from models.events import EventSource, EventStatus, WebhookEvent
from models.generations import Generation, GenerationOutput, GenerationStatus
from models.inbox import insert_event
from models.outbound import (
    DeliveryStatus,
    OutboundAttempt,
    OutboundDelivery,
    OutboundMessage,
    new_message_id,
)
from receiver import create_app
from rivyahooks_foundation.settings import Settings
from rivyahooks_protocol.signatures import fingerprint
from tests.conftest import SECRET, close_app, make_event

# Fixed, so a failure is reproducible, but random-looking: the settings refuse a token with
# too few different characters for its length.
ADMIN_TOKEN = "admin-2XvQ8mLr4KcT9wYb6NdHs3JfPz"
READONLY_TOKEN = "readonly-7GkW1pRx5VnM8qDt4LaZc2EyUh"


@pytest.fixture
def console_settings(settings: Settings) -> Settings:
    return settings.replace(
        console_admin_token=ADMIN_TOKEN,
        console_readonly_token=READONLY_TOKEN,
        console_secure_cookie=False,
    )


@pytest.fixture
def console_app(console_settings: Settings) -> Iterator[Flask]:
    app = create_app(console_settings)
    yield app
    close_app(app)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no CSRF token"
    return found.group(1)


def log_in(client: FlaskClient, token: str) -> str:
    """Log in; return a CSRF token of the logged-in session."""
    page = client.get("/console/login")
    response = client.post(
        "/console/login", data={"token": token, "csrf_token": csrf_of(page.text)}
    )
    assert response.status_code == 302
    return csrf_of(client.get("/console/").text)


def store_event(
    sessions: sessionmaker[Session],
    status: EventStatus = EventStatus.PROCESSED,
    *,
    received_at: dt.datetime | None = None,
    source: EventSource = EventSource.WEBHOOK,
    event: dict[str, object] | None = None,
    **columns: object,
) -> str:
    event = event or make_event()
    with sessions.begin() as session:
        insert_event(
            session,
            event_id=str(event["id"]),
            body=json.dumps(event).encode(),
            source=source,
            status=status,
            event_type=str(event["type"]),
            task_id=str(event["data"]["id"]),  # type: ignore[index]
            secret_fingerprint=fingerprint(SECRET),
            headers={"webhook-signature": "v1,c2lnbmF0dXJlLXZhbHVlLXRoYXQtaXMtbG9uZw=="},
        )
        row = session.scalars(
            select(WebhookEvent).where(WebhookEvent.event_id == event["id"])
        ).one()
        if received_at is not None:
            row.received_at = received_at
        for name, value in columns.items():
            setattr(row, name, value)
    return str(event["id"])


def status_of(sessions: sessionmaker[Session], event_id: str) -> EventStatus:
    with sessions() as session:
        return session.scalars(
            select(WebhookEvent.status).where(WebhookEvent.event_id == event_id)
        ).one()


PNG = b"\x89PNG\r\n\x1a\n" + b"0" * 64


def store_image_generation(settings: Settings, sessions: sessionmaker[Session]) -> None:
    """Store generation task_img: output 0 a PNG, output 1 an SVG that runs a script."""
    root = settings.storage_root()
    (root / "task_img").mkdir(parents=True)
    (root / "task_img" / "0000-a").write_bytes(PNG)
    (root / "task_img" / "0001-b").write_bytes(b"<svg onload=alert(1)></svg>")
    with sessions.begin() as session:
        session.add(
            Generation(
                task_id="task_img",
                model="img-1",
                status=GenerationStatus.SUCCEEDED,
                final_credits=4.5,
            )
        )
        session.flush()
        for index, (key, kind) in enumerate(
            [("task_img/0000-a", "image/png"), ("task_img/0001-b", "image/svg+xml")]
        ):
            session.add(
                GenerationOutput(
                    task_id="task_img",
                    index=index,
                    content_type=kind,
                    size_bytes=len(PNG) if index == 0 else 27,
                    sha256="ab" * 32,
                    storage_key=key,
                    source_host="cdn.rivya.example",
                )
            )


APP_SECRET = "whsec_" + "c2VjcmV0LW9mLXRoZS1zaG9wLWFwcA=="


def store_app(
    sessions: sessionmaker[Session], name: str = "shop", *, ed25519: bool = False, **columns: object
) -> str:
    """Store an app signed with APP_SECRET (and an ed25519 key if asked); return its id."""
    with sessions.begin() as session:
        app = App(
            id=new_app_id(),
            name=name,
            url="https://shop.example/hooks/rivya?token=query-token-of-the-shop",
            events=["result.ready", "result.failed"],
            secret=APP_SECRET.encode(),
            previous_secret=("whsec_" + "cHJldmlvdXMtc2VjcmV0LW9mLXNob3A=").encode(),
            previous_secret_until=utcnow() + dt.timedelta(hours=1),
            signing_key=new_signing_key() if ed25519 else None,
            **{"enabled": True, **columns},
        )
        session.add(app)
    return app.id


def store_delivery(
    sessions: sessionmaker[Session],
    app_id: str,
    status: DeliveryStatus,
    *,
    response: str = "",
    status_code: int | None = 500,
    outcome: str = "failed",
    attempted_at: dt.datetime | None = None,
) -> int:
    """Store a message for the app, its delivery in `status` and one attempt; return its id."""
    now = utcnow()
    with sessions.begin() as session:
        message = OutboundMessage(
            id=new_message_id(),
            type="result.ready",
            task_id=f"task_{uuid.uuid4().hex[:12]}",
            feed_position=1,
            payload=b'{"type": "result.ready"}',
            created_at=now,
        )
        delivery = OutboundDelivery(
            message=message,
            app_id=app_id,
            status=status,
            attempts=1,
            finished_at=now
            if status in (DeliveryStatus.FAILED, DeliveryStatus.DELIVERED)
            else None,
            next_attempt_at=now if status is DeliveryStatus.PENDING else None,
        )
        session.add_all([message, delivery])
        session.flush()
        session.add(
            OutboundAttempt(
                delivery_id=delivery.id,
                app_id=app_id,
                number=1,
                attempted_at=attempted_at or now,
                status_code=status_code,
                latency_ms=123,
                response_excerpt=response,
                error=None if status_code else "ConnectError: connection refused",
                outcome=outcome,
            )
        )
    return delivery.id


def delivery_status(sessions: sessionmaker[Session], delivery_id: int) -> DeliveryStatus:
    with sessions() as session:
        return session.scalars(
            select(OutboundDelivery.status).where(OutboundDelivery.id == delivery_id)
        ).one()
