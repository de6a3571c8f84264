"""The overview counts deliveries by outcome, dead events, reconcile's finds and secrets."""

from __future__ import annotations

import re

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models.delivery_counts import DeliveryCount
from models.events import EventSource, EventStatus
from rivyahooks_protocol.signatures import fingerprint
from tests.conftest import SECRET, make_event, signed_delivery
from tests.receiver.console.conftest import READONLY_TOKEN, log_in, store_event


def test_overview_counts_deliveries_by_outcome(
    console_app: Flask, sessions: sessionmaker[Session]
) -> None:
    client = console_app.test_client()
    body, headers = signed_delivery(make_event())
    assert client.post("/webhooks/rivya", data=body, headers=headers).status_code == 202
    assert client.post("/webhooks/rivya", data=body, headers=headers).status_code == 200
    forged = {**headers, "webhook-signature": "v1,Zm9yZ2Vk"}
    assert client.post("/webhooks/rivya", data=body, headers=forged).status_code == 401
    assert console_app.extensions["delivery_counter"].flush() == 3
    with sessions() as session:
        counts = {(c.outcome, c.reason): c.count for c in session.scalars(select(DeliveryCount))}
    assert counts == {
        ("accepted", ""): 1,
        ("duplicate", ""): 1,
        ("rejected", "signature_invalid"): 1,
    }
    store_event(sessions, EventStatus.DEAD)
    store_event(sessions, EventStatus.PROCESSED, source=EventSource.RECONCILE)
    log_in(client, READONLY_TOKEN)
    page = client.get("/console/").text
    assert "signature_invalid" in page
    assert re.search(r'id="dead-count"><a [^>]*>1</a>', page)
    assert "1 of 3 events" in page  # found only by reconcile, of the last day's events
    assert fingerprint(SECRET) in page
    assert "#1 in RIVYA_WEBHOOK_SECRETS" in page
    chart = client.get("/console/rates.json").json
    assert chart is not None
    assert sum(chart["series"]["accepted"]) * chart["bucket_minutes"] == 1
    assert sum(chart["series"]["rejected"]) * chart["bucket_minutes"] == 1
