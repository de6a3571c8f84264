"""Results pushed to real receiving apps: signed, retried, given up, disabled, never redirected.

Every app here is a real HTTP server verifying each message with the `standardwebhooks`
package; the relay's and the sending worker's steps run in this thread (tests/support/
receiving_apps.pump), so what an attempt leads to is read straight after it.
"""

from __future__ import annotations

import base64
import datetime as dt
import threading
import time
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from werkzeug.wrappers import Request, Response

from models.apps import App, rotate_secret
from models.base import utcnow
from models.events import EventStatus
from models.generations import GenerationStatus, record_change
from models.outbound import DeliveryStatus, OutboundAttempt, OutboundDelivery, replay
from rivyahooks_foundation.settings import Settings
from tasks.outbound_delivery import MAX_ATTEMPTS, RETRY_SCHEDULE_SECONDS, deliver, retry_delay
from tasks.outbound_fanout import fan_out
from tasks.runtime import Runtime
from tests.support.inbox import add_event
from tests.support.receiving_apps import (
    add_app,
    make_due,
    pump,
    receiving_app,
    store_result,
)
from tests.support.tcpproxy import tcp_proxy


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    runtime = Runtime(
        settings.replace(
            outbound_allowed_hosts=("127.0.0.1",),
            outbound_timeout_seconds=1,
            public_base_url="https://hooks.example.com",
        )
    )
    yield runtime
    runtime.close()


def deliveries(sessions: sessionmaker[Session], app_id: str) -> list[OutboundDelivery]:
    with sessions() as session:
        return list(
            session.scalars(
                select(OutboundDelivery)
                .where(OutboundDelivery.app_id == app_id)
                .order_by(OutboundDelivery.id)
            )
        )


def attempts(sessions: sessionmaker[Session], app_id: str) -> list[OutboundAttempt]:
    with sessions() as session:
        return list(
            session.scalars(
                select(OutboundAttempt)
                .where(OutboundAttempt.app_id == app_id)
                .order_by(OutboundAttempt.id)
            )
        )


def read_app(sessions: sessionmaker[Session], app_id: str) -> App:
    with sessions() as session:
        return session.scalars(select(App).where(App.id == app_id)).one()


def test_every_stored_result_reaches_every_subscribed_app_once(
    runtime: Runtime, sessions: sessionmaker[Session]
) -> None:
    with (
        receiving_app("whsec_" + "A" * 32) as first,
        receiving_app("whsec_" + "A" * 32) as second,
        receiving_app("whsec_" + "A" * 32) as failures_only,
    ):
        apps = {}
        for name, receiver, events in (
            ("first", first, ("result.ready", "result.failed")),
            ("second", second, ("result.ready", "result.failed")),
            ("failures", failures_only, ("result.failed",)),
        ):
            app_id, receiver.secret = add_app(sessions, name, receiver.url, events)
            apps[name] = app_id
        for n in range(5):
            store_result(sessions, f"task_ok_{n}", outputs=2)
        store_result(sessions, "task_refused", GenerationStatus.FAILED)

        pump(runtime)
        # The relay coming round again, and a later change of a finished generation that
        # leaves its final state as it was: no message is made twice.
        store_result(sessions, "task_ok_0", outputs=2)
        pump(runtime)

    for receiver in (first, second):
        assert not receiver.refused
        assert len(receiver.received) == len(set(receiver.received)) == 6
        kinds = sorted((m["type"], m["data"]["task_id"]) for m in receiver.messages.values())
        assert kinds == sorted(
            [("result.ready", f"task_ok_{n}") for n in range(5)]
            + [("result.failed", "task_refused")]
        )
    # The same change is the same message (one id) for every app that receives it.
    assert set(first.messages) == set(second.messages)
    assert [m["data"]["task_id"] for m in failures_only.messages.values()] == ["task_refused"]
    ready = next(m for m in first.messages.values() if m["data"]["task_id"] == "task_ok_3")
    assert ready["id"] == first.received[first.received.index(ready["id"])]
    assert ready["id"].startswith("msg_")
    assert ready["data"]["status"] == "succeeded"
    assert [o["url"] for o in ready["data"]["outputs"]] == [
        f"https://hooks.example.com/results/task_ok_3/outputs/{i}" for i in range(2)
    ]
    refused = next(m for m in first.messages.values() if m["type"] == "result.failed")
    assert refused["reason"] == "failed_at_rivya"
    assert refused["data"]["error"]["code"] == "content_policy"
    for app_id in apps.values():
        assert {d.status for d in deliveries(sessions, app_id)} == {DeliveryStatus.DELIVERED}


def test_a_generation_given_up_is_announced_failed_then_ready_once_replayed(
    runtime: Runtime, sessions: sessionmaker[Session]
) -> None:
    with receiving_app("whsec_" + "A" * 32) as receiver:
        _, receiver.secret = add_app(sessions, "shop", receiver.url)
        store_result(sessions, "task_stuck", GenerationStatus.PROCESSING)
        add_event(sessions, "evt_stuck", task_id="task_stuck", status=EventStatus.DEAD)
        # What the worker does when it gives up: the generation changes in the feed.
        with sessions.begin() as session:
            record_change(session, "task_stuck")
        pump(runtime)
        store_result(sessions, "task_stuck")
        pump(runtime)
    assert [(m["type"], m.get("reason")) for m in receiver.messages.values()] == [
        ("result.failed", "gave_up"),
        ("result.ready", None),
    ]


def test_an_app_down_for_a_while_gets_the_message_once_it_is_back(
    runtime: Runtime, sessions: sessionmaker[Session]
) -> None:
    with receiving_app("whsec_" + "A" * 32) as receiver:
        host, port = receiver.url.removeprefix("http://").split("/")[0].split(":")
        with tcp_proxy(host, int(port)) as proxy:
            app_id, receiver.secret = add_app(
                sessions, "shop", f"http://127.0.0.1:{proxy.port}/hooks"
            )
            proxy.cut()
            store_result(sessions, "task_a")
            started = utcnow()
            pump(runtime)
            (down,) = deliveries(sessions, app_id)
            assert down.status is DeliveryStatus.PENDING
            assert down.next_attempt_at is not None
            # Svix's second attempt: 5 s later, with jitter.
            wait = (down.next_attempt_at - started).total_seconds()
            assert 5 * 0.8 - 1 <= wait <= 5 * 1.2 + 1
            assert read_app(sessions, app_id).failing_since is not None

            proxy.restore()
            make_due(sessions)
            pump(runtime)
    (back,) = deliveries(sessions, app_id)
    assert back.status is DeliveryStatus.DELIVERED
    assert back.attempts == 2
    assert receiver.received == [next(iter(receiver.messages))]
    first, second = attempts(sessions, app_id)
    assert (first.status_code, first.outcome) == (None, "retry")
    assert first.error
    assert (second.status_code, second.outcome) == (204, "delivered")
    assert read_app(sessions, app_id).failing_since is None


def test_an_app_answering_500_is_retried_on_the_schedule_then_given_up(
    runtime: Runtime, sessions: sessionmaker[Session]
) -> None:
    def broken(_request: Request) -> Response:
        return Response("database is down" + "x" * 5000, status=500)

    with receiving_app("whsec_" + "A" * 32, broken) as receiver:
        app_id, receiver.secret = add_app(sessions, "shop", receiver.url)
        store_result(sessions, "task_a")
        for _ in range(MAX_ATTEMPTS):
            pump(runtime)
            make_due(sessions)
    (given_up,) = deliveries(sessions, app_id)
    assert given_up.status is DeliveryStatus.FAILED
    assert given_up.attempts == MAX_ATTEMPTS == 8
    assert given_up.reason == "gave up after 8 attempts; last: answered 500"
    made = attempts(sessions, app_id)
    assert [a.outcome for a in made] == ["retry"] * 7 + ["failed"]
    assert all(a.status_code == 500 for a in made)
    # The first KiB of the answer is kept, no more.
    assert made[0].response_excerpt is not None
    assert len(made[0].response_excerpt) == 1024
    assert made[0].response_excerpt.startswith("database is down")
    # One message id on every attempt: the app deduplicates by it.
    assert len(set(receiver.received)) == 1
    assert len(receiver.received) == 8
    # Eight attempts within a minute are no five days of failure: the app stays enabled.
    assert read_app(sessions, app_id).enabled


def test_the_retry_schedule_is_svixs_with_jitter_and_honours_retry_after() -> None:
    for failed, step in enumerate(RETRY_SCHEDULE_SECONDS, start=1):
        delays = [retry_delay(failed) for _ in range(50)]
        assert all(d is not None and step * 0.8 <= d <= step * 1.2 for d in delays)
        assert len(set(delays)) > 1  # jittered
    assert retry_delay(MAX_ATTEMPTS) is None
    assert RETRY_SCHEDULE_SECONDS == (5, 300, 1800, 7200, 18000, 36000, 36000)
    delay = retry_delay(1, retry_after=120)
    assert delay is not None
    assert delay >= 120


def test_retry_after_from_the_app_delays_the_next_attempt(
    runtime: Runtime, sessions: sessionmaker[Session]
) -> None:
    def busy(_request: Request) -> Response:
        return Response(status=503, headers={"Retry-After": "600"})

    with receiving_app("whsec_" + "A" * 32, busy) as receiver:
        app_id, receiver.secret = add_app(sessions, "shop", receiver.url)
        store_result(sessions, "task_a")
        pump(runtime)
    (waiting,) = deliveries(sessions, app_id)
    assert waiting.next_attempt_at is not None
    assert waiting.next_attempt_at - utcnow() > dt.timedelta(seconds=590)


def test_an_app_answering_slower_than_the_timeout_fails_the_attempt(
    runtime: Runtime, sessions: sessionmaker[Session]
) -> None:
    release = threading.Event()

    def slow(_request: Request) -> Response:
        release.wait(10)
        return Response(status=204)

    with receiving_app("whsec_" + "A" * 32, slow) as receiver:
        app_id, receiver.secret = add_app(sessions, "shop", receiver.url)
        store_result(sessions, "task_a")
        started = time.monotonic()
        pump(runtime)
        took = time.monotonic() - started
        release.set()
    (late,) = deliveries(sessions, app_id)
    assert late.status is DeliveryStatus.PENDING
    (attempt,) = attempts(sessions, app_id)
    assert attempt.outcome == "retry"
    assert "Timeout" in (attempt.error or "")
    # Bounded by OUTBOUND_TIMEOUT_SECONDS (1 s here), not by the app.
    assert took < 5
    assert 900 <= attempt.latency_ms < 5000


def test_410_gone_disables_the_app_at_once_and_gives_up_its_other_messages(
    runtime: Runtime, sessions: sessionmaker[Session]
) -> None:
    def gone(_request: Request) -> Response:
        return Response(status=410)

    with receiving_app("whsec_" + "A" * 32, gone) as receiver:
        app_id, receiver.secret = add_app(sessions, "shop", receiver.url)
        for n in range(4):
            store_result(sessions, f"task_{n}")
        pump(runtime)
        store_result(sessions, "task_after")
        pump(runtime)
    app = read_app(sessions, app_id)
    assert not app.enabled
    assert app.disabled_reason == "its endpoint answered 410 Gone"
    rows = deliveries(sessions, app_id)
    assert {d.status for d in rows} == {DeliveryStatus.FAILED}
    # OUTBOUND_MAX_IN_FLIGHT (2) were sent before the first 410 was recorded, no more.
    assert len(receiver.received) <= 2
    assert all(d.reason for d in rows)
    # A disabled app gets no new deliveries.
    assert len(rows) == 4


def test_an_app_failing_for_five_days_is_disabled(
    runtime: Runtime, sessions: sessionmaker[Session]
) -> None:
    def broken(_request: Request) -> Response:
        return Response(status=502)

    with receiving_app("whsec_" + "A" * 32, broken) as receiver:
        app_id, receiver.secret = add_app(sessions, "shop", receiver.url)
        with sessions.begin() as session:
            app = session.get(App, app_id)
            assert app is not None
            app.failing_since = utcnow() - dt.timedelta(days=5, minutes=1)
        store_result(sessions, "task_a")
        pump(runtime)
    app = read_app(sessions, app_id)
    assert not app.enabled
    assert app.disabled_reason == "every attempt failed for 120 hours"


def test_a_redirect_is_not_followed(runtime: Runtime, sessions: sessionmaker[Session]) -> None:
    with receiving_app("whsec_" + "A" * 32) as target:

        def moved(_request: Request) -> Response:
            return Response(status=307, headers={"Location": target.url})

        with receiving_app("whsec_" + "A" * 32, moved) as receiver:
            app_id, receiver.secret = add_app(sessions, "shop", receiver.url)
            target.secret = receiver.secret
            store_result(sessions, "task_a")
            pump(runtime)
    assert target.received == []
    (attempt,) = attempts(sessions, app_id)
    assert (attempt.status_code, attempt.outcome) == (307, "retry")


def test_a_rotated_secret_is_verified_by_both_keys_during_the_grace_period(
    runtime: Runtime, sessions: sessionmaker[Session]
) -> None:
    with receiving_app("whsec_" + "A" * 32) as receiver:
        app_id, old = add_app(sessions, "shop", receiver.url)
        receiver.secret = old
        with sessions.begin() as session:
            app = session.get(App, app_id)
            assert app is not None
            new = rotate_secret(app, utcnow(), dt.timedelta(hours=24))
        store_result(sessions, "task_during")
        pump(runtime)
        (during,) = receiver.headers
        with sessions.begin() as session:
            app = session.get(App, app_id)
            assert app is not None
            app.previous_secret_until = utcnow() - dt.timedelta(seconds=1)
        receiver.secret = new
        store_result(sessions, "task_after")
        pump(runtime)
        _, after = receiver.headers
    assert not receiver.refused
    assert len(during["webhook-signature"].split()) == 2
    assert len(after["webhook-signature"].split()) == 1
    during_body, after_body = (receiver.bodies[h["webhook-id"]] for h in (during, after))
    for secret in (old, new):
        # The app's copy of either secret verifies a message of the grace period.
        Webhook(secret).verify(during_body, during)
    Webhook(new).verify(after_body, after)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(after_body, after)


def test_an_app_with_a_key_pair_gets_v1a_signatures(
    runtime: Runtime, sessions: sessionmaker[Session]
) -> None:
    seed = bytes(range(32))
    with receiving_app("whsec_" + "A" * 32) as receiver:
        _, receiver.secret = add_app(sessions, "shop", receiver.url, signing_key=seed)
        store_result(sessions, "task_a")
        pump(runtime)
    (headers,) = receiver.headers
    entries = dict(entry.split(",", 1) for entry in headers["webhook-signature"].split())
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key()
    body = receiver.bodies[headers["webhook-id"]]
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    public.verify(base64.b64decode(entries["v1a"]), signed)  # raises if it does not verify


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hooks",  # loopback, not in OUTBOUND_ALLOWED_HOSTS
        "https://10.1.2.3/hooks",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hooks",
        "http://8.8.8.8/hooks",  # public, but plain http
    ],
)
def test_the_guard_refuses_private_addresses_and_plain_http(
    settings: Settings, sessions: sessionmaker[Session], url: str
) -> None:
    runtime = Runtime(settings.replace(outbound_timeout_seconds=1))
    try:
        app_id, _ = add_app(sessions, "shop", url)
        store_result(sessions, "task_a")
        pump(runtime)
    finally:
        runtime.close()
    (attempt,) = attempts(sessions, app_id)
    assert (attempt.error or "").startswith("refused by the guard")
    assert attempt.status_code is None


def test_replay_sends_a_delivered_message_again_under_its_id(
    runtime: Runtime, sessions: sessionmaker[Session]
) -> None:
    with receiving_app("whsec_" + "A" * 32) as receiver:
        app_id, receiver.secret = add_app(sessions, "shop", receiver.url)
        store_result(sessions, "task_a")
        pump(runtime)
        with sessions.begin() as session:
            app = session.get(App, app_id)
            assert app is not None
            assert replay(session, app, since=None, failed_only=True, now=utcnow()) == 0
            assert replay(session, app, since=None, failed_only=False, now=utcnow()) == 1
        pump(runtime)
    assert len(receiver.received) == 2
    assert len(set(receiver.received)) == 1


def test_a_message_that_arrives_before_the_relays_mark_commits_is_sent_not_dropped(
    runtime: Runtime, sessions: sessionmaker[Session]
) -> None:
    # The relay marks a batch enqueued and publishes it in one transaction: a worker may be
    # handed the message while the delivery still reads pending. It must send it; dropped,
    # the mark would leave the delivery enqueued with no message behind it for an hour.
    with receiving_app("whsec_" + "A" * 32) as receiver:
        app_id, receiver.secret = add_app(sessions, "shop", receiver.url)
        store_result(sessions, "task_a")
        with runtime.sessions.begin() as session:
            fan_out(session)
        (due,) = deliveries(sessions, app_id)
        assert due.status is DeliveryStatus.PENDING
        deliver(runtime, due.id)
        store_result(sessions, "task_later")
        with runtime.sessions.begin() as session:
            fan_out(session)
        later = deliveries(sessions, app_id)[1]
        with sessions.begin() as session:
            row = session.get(OutboundDelivery, later.id)
            assert row is not None
            row.next_attempt_at = utcnow() + dt.timedelta(minutes=5)
        # Not due yet (a retry's wait): a stray message for it is dropped.
        deliver(runtime, later.id)
    assert [d.status for d in deliveries(sessions, app_id)] == [
        DeliveryStatus.DELIVERED,
        DeliveryStatus.PENDING,
    ]
    assert len(receiver.received) == 1


def test_a_run_sends_its_apps_next_due_messages_while_the_app_answers(
    runtime: Runtime, sessions: sessionmaker[Session]
) -> None:
    with (
        receiving_app("whsec_" + "A" * 32) as shop,
        receiving_app("whsec_" + "A" * 32) as other,
    ):
        shop_id, shop.secret = add_app(sessions, "shop", shop.url)
        other_id, other.secret = add_app(sessions, "other", other.url)
        for n in range(3):
            store_result(sessions, f"task_{n}")
        with runtime.sessions.begin() as session:
            fan_out(session)
        first = deliveries(sessions, shop_id)[0]
        deliver(runtime, first.id)
    # One run: the first message and, in the transactions recording each, the next two.
    assert [d.status for d in deliveries(sessions, shop_id)] == [DeliveryStatus.DELIVERED] * 3
    assert [(a.number, a.outcome) for a in attempts(sessions, shop_id)] == [(1, "delivered")] * 3
    assert len(shop.received) == len(set(shop.received)) == 3
    # Another app's messages are its own runs'.
    assert [d.status for d in deliveries(sessions, other_id)] == [DeliveryStatus.PENDING] * 3
    assert not other.received


def test_a_failed_attempt_ends_the_run_and_a_disabled_app_gets_no_next_message(
    runtime: Runtime, sessions: sessionmaker[Session]
) -> None:
    answers = iter([Response(status=500), Response(status=204), Response(status=204)])

    with receiving_app("whsec_" + "A" * 32, lambda _request: next(answers)) as receiver:
        app_id, receiver.secret = add_app(sessions, "shop", receiver.url)
        for n in range(3):
            store_result(sessions, f"task_{n}")
        with runtime.sessions.begin() as session:
            fan_out(session)
        first, second, _ = deliveries(sessions, app_id)
        deliver(runtime, first.id)
        assert [(d.status, d.attempts) for d in deliveries(sessions, app_id)] == [
            (DeliveryStatus.PENDING, 1),
            (DeliveryStatus.PENDING, 0),
            (DeliveryStatus.PENDING, 0),
        ]

        # Disabled while its message was on the way to a worker: that one is sent, the
        # app's next is left for whoever enables it again.
        with sessions.begin() as session:
            app = session.get(App, app_id)
            assert app is not None
            app.enabled = False
        deliver(runtime, second.id)
    assert [(d.status, d.attempts) for d in deliveries(sessions, app_id)] == [
        (DeliveryStatus.PENDING, 1),
        (DeliveryStatus.DELIVERED, 1),
        (DeliveryStatus.PENDING, 0),
    ]
    assert len(receiver.received) == 2
