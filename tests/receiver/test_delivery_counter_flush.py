"""The counts reach the database: every answer of the app under its outcome, outages too."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, select
from sqlalchemy.orm import Session, sessionmaker

from models.db import make_session_factory
from models.delivery_counts import DeliveryCount
from receiver import create_app
from rivyahooks_foundation.settings import Settings
from tests.conftest import close_app, make_event, signed_delivery


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
