"""Every console request needs a logged-in operator, and every POST a valid CSRF token."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models.events import EventStatus
from models.operator_actions import OperatorAction
from tests.receiver.console.conftest import ADMIN_TOKEN, log_in, status_of, store_event


def test_pages_need_a_login(console_app: Flask) -> None:
    client = console_app.test_client()
    for path in ("/console/", "/console/events", "/console/dead", "/console/generations"):
        response = client.get(path)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/console/login")
    assert client.get("/console/rates.json").status_code == 302
    assert client.get("/console/", headers={"HX-Request": "true"}).status_code == 401


def test_anonymous_post_is_refused(console_app: Flask, sessions: sessionmaker[Session]) -> None:
    event_id = store_event(sessions, EventStatus.DEAD)
    response = console_app.test_client().post(f"/console/events/{event_id}/replay")
    assert response.status_code == 403
    assert status_of(sessions, event_id) is EventStatus.DEAD


def test_replay_with_a_wrong_csrf_token_changes_nothing(
    console_app: Flask, sessions: sessionmaker[Session]
) -> None:
    event_id = store_event(sessions, EventStatus.DEAD)
    client = console_app.test_client()
    csrf = log_in(client, ADMIN_TOKEN)
    for data in ({}, {"csrf_token": csrf[:-4] + "AAAA"}):
        response = client.post(f"/console/events/{event_id}/replay", data=data)
        assert response.status_code == 400
        assert "CSRF" in response.text
    assert status_of(sessions, event_id) is EventStatus.DEAD
    with sessions() as session:
        assert session.scalars(select(OperatorAction)).all() == []
