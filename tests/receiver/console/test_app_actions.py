"""Replaying, disabling and enabling an app: admins only, CSRF-checked, each one recorded."""

from __future__ import annotations

import datetime as dt

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models.apps import App
from models.base import utcnow
from models.operator_actions import OperatorAction
from models.outbound import DeliveryStatus
from receiver.console.access import console_access
from tests.receiver.console.conftest import (
    ADMIN_TOKEN,
    READONLY_TOKEN,
    csrf_of,
    delivery_status,
    log_in,
    store_app,
    store_delivery,
)


def actions(sessions: sessionmaker[Session]) -> list[OperatorAction]:
    with sessions() as session:
        return list(session.scalars(select(OperatorAction).order_by(OperatorAction.id)))


def enabled(sessions: sessionmaker[Session], app_id: str) -> bool:
    with sessions() as session:
        app = session.get(App, app_id)
        assert app is not None
        return app.enabled


def test_admin_replay_makes_a_failed_delivery_due_and_is_recorded(
    console_app: Flask, sessions: sessionmaker[Session]
) -> None:
    shop = store_app(sessions)
    failed = store_delivery(sessions, shop, DeliveryStatus.FAILED)
    delivered = store_delivery(
        sessions, shop, DeliveryStatus.DELIVERED, status_code=200, outcome="delivered"
    )
    client = console_app.test_client()
    log_in(client, ADMIN_TOKEN)
    preview = client.get("/console/apps/shop/replay/preview?failed_only=1").text
    since = (utcnow() - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    response = client.post(
        "/console/apps/shop/replay",
        data={"csrf_token": csrf_of(preview), "since": since, "failed_only": "1"},
    )
    assert response.status_code == 302
    assert delivery_status(sessions, failed) is DeliveryStatus.PENDING
    assert delivery_status(sessions, delivered) is DeliveryStatus.DELIVERED
    assert "1 message(s) made due again for shop" in client.get("/console/apps/shop").text
    (action,) = actions(sessions)
    assert (action.action, action.role, action.event_id) == ("app_replay", "admin", None)
    assert action.detail is not None
    assert action.detail.startswith(f"app shop ({shop}): 1 given-up messages since ")
    with console_app.app_context():
        assert action.token_fingerprint == console_access().fingerprint(ADMIN_TOKEN)


def test_admin_disables_and_enables_an_app(
    console_app: Flask, sessions: sessionmaker[Session]
) -> None:
    shop = store_app(sessions)
    pending = store_delivery(sessions, shop, DeliveryStatus.PENDING)
    client = console_app.test_client()
    csrf = log_in(client, ADMIN_TOKEN)
    assert 'id="disable"' in client.get("/console/apps/shop").text
    assert client.post("/console/apps/shop/disable", data={"csrf_token": csrf}).status_code == 302
    assert not enabled(sessions, shop)
    assert delivery_status(sessions, pending) is DeliveryStatus.FAILED
    page = client.get("/console/apps/shop").text
    assert "1 open message(s) given up" in page
    assert 'id="enable"' in page
    # A disabled app is not replayed: its deliveries would only be given up again.
    client.post("/console/apps/shop/replay", data={"csrf_token": csrf})
    assert delivery_status(sessions, pending) is DeliveryStatus.FAILED
    assert "enable it first" in client.get("/console/apps/shop").text
    assert client.post("/console/apps/shop/enable", data={"csrf_token": csrf}).status_code == 302
    assert enabled(sessions, shop)
    assert [(a.action, a.detail) for a in actions(sessions)] == [
        ("app_disable", f"app shop ({shop}): 1 open message(s) given up"),
        ("app_enable", f"app shop ({shop}): enabled"),
    ]


def test_readonly_cannot_act_on_an_app(console_app: Flask, sessions: sessionmaker[Session]) -> None:
    shop = store_app(sessions)
    failed = store_delivery(sessions, shop, DeliveryStatus.FAILED)
    client = console_app.test_client()
    csrf = log_in(client, READONLY_TOKEN)
    for action in ("replay", "disable", "enable"):
        response = client.post(f"/console/apps/shop/{action}", data={"csrf_token": csrf})
        assert response.status_code == 403
    assert delivery_status(sessions, failed) is DeliveryStatus.FAILED
    assert enabled(sessions, shop)
    assert actions(sessions) == []


def test_an_action_without_a_valid_csrf_token_changes_nothing(
    console_app: Flask, sessions: sessionmaker[Session]
) -> None:
    shop = store_app(sessions)
    failed = store_delivery(sessions, shop, DeliveryStatus.FAILED)
    client = console_app.test_client()
    csrf = log_in(client, ADMIN_TOKEN)
    for data in ({}, {"csrf_token": csrf[:-4] + "AAAA"}):
        for action in ("replay", "disable"):
            response = client.post(f"/console/apps/shop/{action}", data=data)
            assert response.status_code == 400
            assert "CSRF" in response.text
    assert delivery_status(sessions, failed) is DeliveryStatus.FAILED
    assert enabled(sessions, shop)
    assert actions(sessions) == []
    anonymous = console_app.test_client().post("/console/apps/shop/disable")
    assert anonymous.status_code == 403


def test_overview_counts_disabled_apps_and_the_outbound_backlog(
    console_app: Flask, sessions: sessionmaker[Session]
) -> None:
    shop = store_app(sessions)
    store_app(sessions, "archive", enabled=False, disabled_reason="by hand")
    store_delivery(sessions, shop, DeliveryStatus.PENDING)
    store_delivery(sessions, shop, DeliveryStatus.FAILED)
    client = console_app.test_client()
    log_in(client, READONLY_TOKEN)
    page = client.get("/console/").text
    assert '<a href="/console/apps">1</a>' in page.split('id="outbound-backlog">')[1][:40]
    assert '<a href="/console/apps">1</a>' in page.split('id="apps-disabled">')[1][:40]
    assert "of 2 app(s)" in page
