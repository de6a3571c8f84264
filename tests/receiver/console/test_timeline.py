"""An event's timeline on its page: each attempt and each operator action, in time order."""

from __future__ import annotations

import datetime as dt
import re

from flask import Flask
from sqlalchemy.orm import Session, sessionmaker

from models.base import utcnow
from models.events import AttemptOutcome, EventAttempt, EventStatus
from receiver.console.access import console_access
from rivyahooks_protocol.signatures import fingerprint
from tests.conftest import SECRET
from tests.receiver.console.conftest import ADMIN_TOKEN, log_in, store_event


def test_timeline_shows_each_attempt_and_the_operator_in_time_order(
    console_app: Flask, sessions: sessionmaker[Session]
) -> None:
    t0 = utcnow() - dt.timedelta(minutes=10)

    def at(seconds: int) -> dt.datetime:
        return t0 + dt.timedelta(seconds=seconds)

    event_id = store_event(
        sessions,
        EventStatus.DEAD,
        received_at=at(0),
        enqueued_at=at(31),
        finished_at=at(40),
        attempts=2,
        status_reason="gave up after 2 attempts: Rivya: HTTP 503",
        last_error="gave up after 2 attempts: Rivya: HTTP 503",
    )
    with sessions.begin() as session:
        session.add_all(
            [
                EventAttempt(
                    event_id=event_id,
                    number=1,
                    worker="host-a:101",
                    started_at=at(1),
                    finished_at=at(2),
                    outcome=AttemptOutcome.FAILED,
                    error="Rivya: HTTP 503 https://cdn.rivya.example/0.png?X-Sig=secretsig",
                    retry_at=at(30),
                ),
                EventAttempt(
                    event_id=event_id,
                    number=2,
                    worker="host-b:202",
                    started_at=at(32),
                    finished_at=at(40),
                    outcome=AttemptOutcome.DEAD,
                    error="gave up after 2 attempts: Rivya: HTTP 503",
                ),
            ]
        )
    client = console_app.test_client()
    csrf = log_in(client, ADMIN_TOKEN)
    with console_app.app_context():
        keyed = console_access().fingerprint(ADMIN_TOKEN)

    def shown_steps() -> list[str]:
        page = client.get(f"/console/events/{event_id}").text
        assert "secretsig" not in page
        timeline = page[page.index('id="timeline"') : page.index("</ol>")]
        return [
            re.sub(r"<[^>]+>", "", item).split(" UTC ", 1)[1].strip()
            for item in re.findall(r"<li [^>]*>(.*?)</li>", timeline, re.S)
        ]

    attempts = [
        "received via webhook verified by secret " + fingerprint(SECRET),
        "attempt 1 started on host-a:101",
        "attempt 1 failed Rivya: HTTP 503 https://cdn.rivya.example/0.png?…\n"
        "next attempt due " + f"{at(30):%Y-%m-%d %H:%M:%S} UTC",
        "published by the relay the latest publish",
        "attempt 2 started on host-b:202",
        "attempt 2 failed for good gave up after 2 attempts: Rivya: HTTP 503",
    ]
    # The event's reason is its last attempt's error: said once, not twice.
    assert shown_steps() == [*attempts, "dead"]
    client.post(f"/console/events/{event_id}/replay", data={"csrf_token": csrf})
    # Waiting for the relay again: no longer finished, and the replay says who asked.
    assert shown_steps() == [
        *attempts,
        f"replay by admin (token {keyed}) "
        "dead -&gt; received: be processed again (stored outputs are kept)",
    ]
