"""The operator console through Flask's test client: access, CSRF, pages, replay, counts.

The browser tests (test_console_browser.py) drive the same pages in Chromium against
gunicorn; these cover every refusal and every page's content on both databases.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, create_engine, select
from sqlalchemy.orm import Session, sessionmaker

from models.base import utcnow
from models.db import make_session_factory
from models.delivery_counts import DeliveryCount
from models.events import AttemptOutcome, EventAttempt, EventSource, EventStatus, WebhookEvent
from models.generations import Generation, GenerationOutput, GenerationStatus
from models.inbox import insert_event
from models.operator_actions import OperatorAction
from receiver import create_app
from rivyahooks_foundation.settings import Settings, SettingsError
from rivyahooks_protocol.signatures import fingerprint
from tests.conftest import SECRET, close_app, make_event, signed_delivery

ADMIN_TOKEN = "admin-token-" + "a" * 24
READONLY_TOKEN = "readonly-token-" + "r" * 24


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


# --- closed unless configured ----------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/console/", "/console/login", "/console/events", "/console/static/console.css"]
)
def test_console_is_404_without_a_token(client: FlaskClient, path: str) -> None:
    assert client.get(path).status_code == 404
    assert client.post(path, data={"token": "anything"}).status_code in (404, 405)


def test_same_token_for_both_roles_is_refused(settings: Settings) -> None:
    same = settings.replace(console_admin_token=ADMIN_TOKEN, console_readonly_token=ADMIN_TOKEN)
    with pytest.raises(SettingsError, match="CONSOLE_READONLY_TOKEN") as caught:
        create_app(same)
    assert ADMIN_TOKEN not in str(caught.value)


def test_short_token_is_refused_without_echoing_it() -> None:
    with pytest.raises(SettingsError, match="CONSOLE_ADMIN_TOKEN") as caught:
        Settings.from_env({"CONSOLE_ADMIN_TOKEN": "short-token"})
    assert "short-token" not in str(caught.value)


# --- login, session, CSRF --------------------------------------------------------------


def test_pages_need_a_login(console_app: Flask) -> None:
    client = console_app.test_client()
    for path in ("/console/", "/console/events", "/console/dead", "/console/generations"):
        response = client.get(path)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/console/login")
    assert client.get("/console/rates.json").status_code == 302
    assert client.get("/console/", headers={"HX-Request": "true"}).status_code == 401


def test_wrong_token_is_refused(console_app: Flask) -> None:
    client = console_app.test_client()
    page = client.get("/console/login")
    refused = client.post(
        "/console/login", data={"token": ADMIN_TOKEN + "x", "csrf_token": csrf_of(page.text)}
    )
    assert refused.status_code == 401
    assert client.get("/console/").status_code == 302


def test_login_without_csrf_token_is_refused(console_app: Flask) -> None:
    client = console_app.test_client()
    client.get("/console/login")
    assert client.post("/console/login", data={"token": ADMIN_TOKEN}).status_code == 400
    assert client.get("/console/").status_code == 302


def _session_payload(cookie_value: str) -> dict[str, object]:
    # Flask's cookie: [.]base64(payload).timestamp.signature, the payload zlib'd when dotted.
    compressed = cookie_value.startswith(".")
    data = cookie_value.lstrip(".").split(".")[0]
    raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    return dict(json.loads(zlib.decompress(raw) if compressed else raw))


def test_session_cookie_is_hardened_and_holds_no_token(settings: Settings) -> None:
    app = create_app(settings.replace(console_admin_token=ADMIN_TOKEN))
    try:
        client = app.test_client()
        page = client.get("/console/login")
        response = client.post(
            "/console/login", data={"token": ADMIN_TOKEN, "csrf_token": csrf_of(page.text)}
        )
        header = response.headers["Set-Cookie"]
        assert "HttpOnly" in header
        assert "Secure" in header  # the default: only local development turns it off
        assert "SameSite=Lax" in header
        assert "Path=/console" in header
        value = header.split(";")[0].split("=", 1)[1]
        payload = _session_payload(value)
        assert payload["role"] == "admin"
        assert payload["token"] == fingerprint(ADMIN_TOKEN)
        assert ADMIN_TOKEN not in json.dumps(payload)
    finally:
        close_app(app)


def test_a_rotated_token_ends_the_session(console_settings: Settings) -> None:
    first = create_app(console_settings)
    client = first.test_client()
    log_in(client, ADMIN_TOKEN)
    cookie = client.get_cookie("rivya_console", path="/console")
    assert cookie is not None
    rotated = create_app(console_settings.replace(console_admin_token="b" * 40))
    try:
        later = rotated.test_client()
        later.set_cookie(cookie.key, cookie.value, path="/console")
        assert later.get("/console/").status_code == 302
    finally:
        close_app(first)
        close_app(rotated)


def test_logout_needs_csrf_and_ends_the_session(console_app: Flask) -> None:
    client = console_app.test_client()
    csrf = log_in(client, READONLY_TOKEN)
    assert client.post("/console/logout").status_code == 400
    assert client.get("/console/").status_code == 200
    assert client.post("/console/logout", data={"csrf_token": csrf}).status_code == 302
    assert client.get("/console/").status_code == 302


def test_only_console_requests_open_a_session(console_app: Flask) -> None:
    # Opening Flask's cookie session costs about as much as a whole delivery: a webhook
    # request (where the console's cookie is never sent) must not pay for it.
    from flask import session
    from flask.sessions import NullSession

    with console_app.test_request_context("/webhooks/rivya", method="POST"):
        assert isinstance(session._get_current_object(), NullSession)  # type: ignore[attr-defined]
    with console_app.test_request_context("/console/events"):
        assert not isinstance(session._get_current_object(), NullSession)  # type: ignore[attr-defined]


def test_pages_carry_security_headers(console_app: Flask) -> None:
    client = console_app.test_client()
    log_in(client, READONLY_TOKEN)
    response = client.get("/console/events")
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-store"


# --- replay ------------------------------------------------------------------------------


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
    assert action.token_fingerprint == fingerprint(ADMIN_TOKEN)
    timeline = client.get(f"/console/events/{event_id}").text
    assert f"replay by admin (token {fingerprint(ADMIN_TOKEN)})" in timeline
    assert "dead -&gt; received" in timeline
    assert "RivyaServerError: 503" in timeline


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
        f"replay by admin (token {fingerprint(ADMIN_TOKEN)}) "
        "dead -&gt; received: be processed again (stored outputs are kept)",
    ]


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


def test_anonymous_post_is_refused(console_app: Flask, sessions: sessionmaker[Session]) -> None:
    event_id = store_event(sessions, EventStatus.DEAD)
    response = console_app.test_client().post(f"/console/events/{event_id}/replay")
    assert response.status_code == 403
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


# --- pages -------------------------------------------------------------------------------


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


def counted(sessions: sessionmaker[Session]) -> dict[tuple[str, str], int]:
    with sessions() as session:
        return {(c.outcome, c.reason): c.count for c in session.scalars(select(DeliveryCount))}


def test_every_answer_of_the_receiver_is_counted_under_its_outcome(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    # The counter runs whether or not the console is open.
    app = create_app(settings.replace(webhook_max_body_bytes=4096))
    client = app.test_client()
    try:
        event = make_event()
        body, headers = signed_delivery(event)
        quarantined, quarantined_headers = signed_delivery(b"not an envelope")
        mismatch, mismatch_headers = signed_delivery(make_event(), webhook_id="evt_other")
        stale, stale_headers = signed_delivery(make_event(), timestamp=1_000_000_000)
        large, large_headers = signed_delivery(make_event() | {"pad": "x" * 5000})
        answers = [
            (client.post("/webhooks/rivya", data=body, headers=headers), 202),
            (client.post("/webhooks/rivya/", data=body, headers=headers), 200),
            (client.post("/webhooks/rivya", data=quarantined, headers=quarantined_headers), 202),
            (client.post("/webhooks/rivya", data=body, headers={"webhook-id": "x"}), 401),
            (
                client.post(
                    "/webhooks/rivya",
                    data=body,
                    headers={**headers, "webhook-signature": "v1,Zm9yZ2Vk"},
                ),
                401,
            ),
            (client.post("/webhooks/rivya", data=stale, headers=stale_headers), 401),
            (client.post("/webhooks/rivya", data=mismatch, headers=mismatch_headers), 400),
            (client.post("/webhooks/rivya", data=large, headers=large_headers), 413),
            # Not deliveries: never counted.
            (client.get("/webhooks/rivya"), 405),
            (client.get("/healthz"), 200),
        ]
        assert [r.status_code for r, _ in answers] == [status for _, status in answers]
        assert app.extensions["delivery_counter"].flush() == 8
    finally:
        close_app(app)
    assert counted(sessions) == {
        ("accepted", ""): 1,
        ("duplicate", ""): 1,
        ("quarantined", ""): 1,
        ("rejected", "signature_missing"): 1,
        ("rejected", "signature_invalid"): 1,
        ("rejected", "timestamp_out_of_tolerance"): 1,
        ("rejected", "event_id_mismatch"): 1,
        ("rejected", "body_too_large"): 1,
    }


def test_a_delivery_refused_while_the_database_is_down_is_counted(
    postgres_url: str, settings: Settings, postgres_engine: Engine
) -> None:
    from urllib.parse import urlsplit

    from sqlalchemy.engine import make_url

    from tests.support import services
    from tests.support.tcpproxy import tcp_proxy

    target = urlsplit(services.POSTGRES_ADMIN_URL)
    with tcp_proxy(target.hostname or "127.0.0.1", target.port or 5432) as proxy:
        url = make_url(postgres_url).set(host="127.0.0.1", port=proxy.port)
        app = create_app(settings.replace(database_url=url.render_as_string(False)))
        client = app.test_client()
        try:
            first, first_headers = signed_delivery(make_event())
            assert (
                client.post("/webhooks/rivya", data=first, headers=first_headers).status_code == 202
            )
            proxy.cut()
            body, headers = signed_delivery(make_event())
            refused = client.post("/webhooks/rivya", data=body, headers=headers)
            assert refused.status_code == 503
            assert app.extensions["delivery_counter"].flush() == 0  # kept for later
            proxy.restore()
            assert app.extensions["delivery_counter"].flush() == 2
        finally:
            close_app(app)
    assert counted(make_session_factory(postgres_engine)) == {
        ("accepted", ""): 1,
        ("unavailable", "database_unavailable"): 1,
    }


def test_counts_survive_a_database_outage_until_the_next_flush(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    from receiver.delivery_counter import DeliveryCounter

    # A database without the table fails every write, as one that is down does.
    empty = create_engine(f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    counter = DeliveryCounter(sessionmaker(empty))
    counter.add(("rejected", "signature_missing"))
    counter.add(("rejected", "signature_missing"))
    assert counter.flush() == 0  # kept for the next flush
    counter._sessions = sessions
    assert counter.flush() == 2
    assert counter.flush() == 0
    with sessions() as session:
        assert session.scalars(select(DeliveryCount.count)).one() == 2
    empty.dispose()


def test_generation_page_previews_images_and_serves_files_safely(
    console_app: Flask, console_settings: Settings, sessions: sessionmaker[Session]
) -> None:
    root = console_settings.storage_root()
    png = b"\x89PNG\r\n\x1a\n" + b"0" * 64
    (root / "task_img").mkdir(parents=True)
    (root / "task_img" / "0000-a").write_bytes(png)
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
                    size_bytes=len(png) if index == 0 else 27,
                    sha256="ab" * 32,
                    storage_key=key,
                    source_host="cdn.rivya.example",
                )
            )
    client = console_app.test_client()
    assert client.get("/console/generations/task_img/outputs/0").status_code == 302
    log_in(client, READONLY_TOKEN)
    page = client.get("/console/generations/task_img").text
    assert '<img src="/console/generations/task_img/outputs/0"' in page
    assert "/results/task_img/outputs/1" in page
    assert "4.5" in page
    with client.get("/console/generations/task_img/outputs/0") as image:
        assert image.status_code == 200
        assert image.data == png
        assert image.headers["Content-Type"] == "image/png"
        assert "sandbox" in image.headers["Content-Security-Policy"]
    with client.get("/console/generations/task_img/outputs/1") as svg:
        assert svg.headers["Content-Type"] == "application/octet-stream"
        assert svg.headers["Content-Disposition"].startswith("attachment")
    assert client.get("/console/generations/task_img/outputs/7").status_code == 404
    listing = client.get("/console/generations?status=succeeded").text
    assert "task_img" in listing
