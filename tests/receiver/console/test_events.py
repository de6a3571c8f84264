"""The events pages: an event shown without secrets, the list filtered and paged without gaps."""

from __future__ import annotations

import datetime as dt
import re

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models.base import utcnow
from models.events import EventSource, EventStatus, WebhookEvent
from tests.conftest import make_event
from tests.receiver.console.conftest import READONLY_TOKEN, log_in, store_event


def test_event_page_hides_signatures_and_keys(
    console_app: Flask, sessions: sessionmaker[Session]
) -> None:
    event = make_event()
    signed_url = "https://cdn.rivya.example/out/0.png?X-Sig=deadbeefsignature&expires=99"
    event["data"] = {  # type: ignore[index]
        "id": "task_x",
        "result": {"urls": [signed_url]},
        "note": "<script>alert(1)</script> rvya_sk_live_abcdef123456",
    }
    event_id = store_event(
        sessions, EventStatus.DEAD, event=event, last_error=f"download failed: {signed_url}"
    )
    client = console_app.test_client()
    log_in(client, READONLY_TOKEN)
    page = client.get(f"/console/events/{event_id}").text
    assert "https://cdn.rivya.example/out/0.png?…" in page
    assert "deadbeefsignature" not in page
    assert "abcdef123456" not in page
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "c2lnbmF0dXJlLXZhbHVlLXRoYXQtaXMtbG9uZw" not in page  # the signature header


def test_events_list_filters_and_pages_without_gaps(
    console_app: Flask, sessions: sessionmaker[Session]
) -> None:
    start = utcnow() - dt.timedelta(hours=2)
    ids = [
        store_event(sessions, received_at=start + dt.timedelta(seconds=n // 2)) for n in range(120)
    ]
    reconciled = store_event(sessions, EventStatus.DEAD, source=EventSource.RECONCILE)
    client = console_app.test_client()
    log_in(client, READONLY_TOKEN)
    seen: list[str] = []
    url = "/console/events?source=webhook"
    while url:
        page = client.get(url).text
        seen += re.findall(r'data-event-id="([^"]+)"', page)
        found = re.search(r'href="(\?[^"]+)" rel="next"', page)
        url = "/console/events" + found.group(1).replace("&amp;", "&") if found else ""
    assert len(seen) == len(set(seen)) == 120
    assert set(seen) == set(ids)
    dead_page = client.get("/console/events?status=dead").text
    assert re.findall(r'data-event-id="([^"]+)"', dead_page) == [reconciled]
    with sessions() as session:
        task = session.scalars(
            select(WebhookEvent.task_id).where(WebhookEvent.event_id == ids[5])
        ).one()
    by_task = client.get(f"/console/events?task={task}").text
    assert re.findall(r'data-event-id="([^"]+)"', by_task) == [ids[5]]
    until = (start + dt.timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%S")
    early = client.get(f"/console/events?until={until}").text
    assert sorted(re.findall(r'data-event-id="([^"]+)"', early)) == sorted(ids[:4])
    assert client.get("/console/events?status=bogus").status_code == 400
    assert client.get("/console/events?after=nonsense").status_code == 400
