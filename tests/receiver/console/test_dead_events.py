"""Replays from the console: by an admin only, one event or exactly the previewed batch."""

from __future__ import annotations

import datetime as dt
import re
import uuid

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models.base import utcnow
from models.events import EventStatus
from models.operator_actions import OperatorAction
from receiver.console.access import console_access
from tests.receiver.console.conftest import (
    ADMIN_TOKEN,
    READONLY_TOKEN,
    log_in,
    status_of,
    store_event,
)


def test_admin_replays_a_dead_event_and_the_timeline_shows_who(
    console_app: Flask, sessions: sessionmaker[Session]
) -> None:
    event_id = store_event(sessions, EventStatus.DEAD, last_error="RivyaServerError: 503")
    client = console_app.test_client()
    csrf = log_in(client, ADMIN_TOKEN)
    page = client.get(f"/console/events/{event_id}")
    assert 'id="replay"' in page.text
    response = client.post(f"/console/events/{event_id}/replay", data={"csrf_token": csrf})
    assert response.status_code == 302
    assert status_of(sessions, event_id) is EventStatus.RECEIVED  # the relay publishes it
    with sessions() as session:
        (action,) = session.scalars(select(OperatorAction)).all()
    assert (action.action, action.event_id, action.role) == ("replay", event_id, "admin")
    with console_app.app_context():
        keyed = console_access().fingerprint(ADMIN_TOKEN)
    assert action.token_fingerprint == keyed
    timeline = client.get(f"/console/events/{event_id}").text
    assert f"replay by admin (token {keyed})" in timeline
    assert "dead -&gt; received" in timeline
    assert "RivyaServerError: 503" in timeline


def test_readonly_cannot_replay(console_app: Flask, sessions: sessionmaker[Session]) -> None:
    event_id = store_event(sessions, EventStatus.DEAD)
    client = console_app.test_client()
    csrf = log_in(client, READONLY_TOKEN)
    page = client.get(f"/console/events/{event_id}")
    assert 'id="replay"' not in page.text
    assert "needs the admin token" in page.text
    one = client.post(f"/console/events/{event_id}/replay", data={"csrf_token": csrf})
    batch = client.post("/console/dead/replay", data={"csrf_token": csrf, "event_id": event_id})
    assert one.status_code == batch.status_code == 403
    assert status_of(sessions, event_id) is EventStatus.DEAD


def test_batch_replay_runs_exactly_the_previewed_events(
    console_app: Flask, sessions: sessionmaker[Session]
) -> None:
    old = utcnow() - dt.timedelta(hours=3)
    dead_old = store_event(sessions, EventStatus.DEAD, received_at=old)
    dead_new = store_event(sessions, EventStatus.DEAD)
    unreadable = store_event(
        sessions,
        EventStatus.QUARANTINED,
        event={"id": f"evt_{uuid.uuid4().hex}", "type": "x", "data": {"id": "t"}},
    )
    processed = store_event(sessions, EventStatus.PROCESSED)
    client = console_app.test_client()
    csrf = log_in(client, ADMIN_TOKEN)
    since = (utcnow() - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    preview = client.get(f"/console/dead/preview?status=dead&since={since}")
    assert dead_new in preview.text
    assert dead_old not in preview.text
    assert processed not in preview.text
    assert status_of(sessions, dead_new) is EventStatus.DEAD  # a preview changes nothing
    listed = re.findall(r'name="event_id" value="([^"]+)"', preview.text)
    assert listed == [dead_new]
    response = client.post(
        "/console/dead/replay", data={"csrf_token": csrf, "event_id": [*listed, processed]}
    )
    assert response.status_code == 302
    assert status_of(sessions, dead_new) is not EventStatus.DEAD
    assert status_of(sessions, dead_old) is EventStatus.DEAD
    assert status_of(sessions, processed) is EventStatus.PROCESSED  # not dead: not replayed
    assert status_of(sessions, unreadable) is EventStatus.QUARANTINED
    with sessions() as session:
        assert [a.event_id for a in session.scalars(select(OperatorAction))] == [dead_new]
