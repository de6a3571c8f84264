"""Forged, replayed, stale, future, malformed and oversized deliveries, one row each.

Each case states the status and error code the sender sees and what the inbox holds
afterwards: nothing for anything unverified, exactly one `quarantined` row with the raw
bytes for a verified delivery this code cannot act on.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks.webhooks import Webhook

from models.events import EventStatus, WebhookEvent
from receiver import create_app
from rivyahooks_foundation.settings import Settings
from rivyahooks_protocol import contract, signatures
from rivyahooks_protocol.signatures import fingerprint
from tests.conftest import OTHER_SECRET, SECRET, close_app, make_event, signed_delivery
from tests.support.ed25519 import openssl_key

PATH = "/webhooks/rivya"
ACCEPTED = "accepted"
QUARANTINED = "quarantined"


@dataclass
class Delivery:
    body: bytes
    headers: dict[str, str]
    method: str = "POST"
    path: str = PATH


@dataclass(frozen=True)
class Case:
    build: Callable[[int], Delivery]
    status: int
    code: str | None = None  # the error code, for 4xx answers
    outcome: str | None = None  # "accepted" or "quarantined" for 2xx answers
    scheme: str = contract.SCHEME_STANDARD
    marks: tuple[Any, ...] = field(default=())


def reference(body: bytes, now: int, msg_id: str | None = None, secret: str = SECRET) -> Delivery:
    """Sign like Rivya would, with the reference implementation."""
    msg_id = msg_id or json.loads(body)["id"]
    signature = Webhook(secret).sign(msg_id, dt.datetime.fromtimestamp(now, dt.UTC), body.decode())
    return Delivery(
        body,
        {
            "Content-Type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(now),
            "webhook-signature": signature,
        },
    )


def event_body(**changes: Any) -> bytes:
    event = make_event()
    event.update(changes)
    return json.dumps(event).encode()


def genuine(now: int) -> Delivery:
    return reference(event_body(), now)


def changed(delivery: Delivery, **headers: str | None) -> Delivery:
    for name, value in headers.items():
        name = name.replace("_", "-")
        if value is None:
            delivery.headers.pop(name, None)
        else:
            delivery.headers[name] = value
    return delivery


def with_body(delivery: Delivery, body: bytes) -> Delivery:
    delivery.body = body
    return delivery


def with_method(delivery: Delivery, method: str, path: str = PATH) -> Delivery:
    delivery.method = method
    delivery.path = path
    return delivery


def resigned_timestamp(now: int, ts: int) -> Delivery:
    """A valid signature made at `ts`, replayed with it."""
    return reference(event_body(), ts)


def random_id() -> str:
    return f"evt_{uuid.uuid4().hex}"


def timestamped(body: bytes, now: int, secret: str = SECRET) -> Delivery:
    _, headers = signed_delivery(
        body, secret=secret, scheme=contract.SCHEME_TIMESTAMPED_HMAC, timestamp=now
    )
    return Delivery(body, headers)


def long_id_delivery(now: int, length: int) -> Delivery:
    event_id = "evt_" + "x" * (length - 4)
    return reference(event_body(id=event_id), now)


def nul_id_delivery(now: int) -> Delivery:
    # Signed correctly over an id no real sender uses; PostgreSQL cannot store a NUL.
    body = event_body()
    _, headers = signed_delivery(body, webhook_id="evt_\x00a", timestamp=now)
    return Delivery(body, headers)


SIG = "webhook-signature"
B64_ZEROS = base64.b64encode(b"\0" * 32).decode()

CASES: dict[str, Case] = {
    # --- the baseline: genuine deliveries are taken ------------------------------------
    "genuine": Case(genuine, 202, outcome=ACCEPTED),
    "genuine-trailing-slash": Case(
        lambda now: with_method(genuine(now), "POST", PATH + "/"), 202, outcome=ACCEPTED
    ),
    "genuine-upper-case-header-names": Case(
        lambda now: Delivery(
            (d := genuine(now)).body, {k.upper(): v for k, v in d.headers.items()}
        ),
        202,
        outcome=ACCEPTED,
    ),
    "genuine-at-window-edge": Case(
        lambda now: reference(event_body(), now - 295), 202, outcome=ACCEPTED
    ),
    "genuine-long-api-version": Case(
        lambda now: reference(event_body(api_version="2026-05-11." + "9" * 40), now),
        202,
        outcome=ACCEPTED,
    ),
    "genuine-255-char-id": Case(lambda now: long_id_delivery(now, 255), 202, outcome=ACCEPTED),
    # --- missing parts -------------------------------------------------------------------
    "no-headers": Case(lambda now: Delivery(event_body(), {}), 401, "signature_missing"),
    "no-id": Case(lambda now: changed(genuine(now), webhook_id=None), 401, "signature_missing"),
    "no-timestamp": Case(
        lambda now: changed(genuine(now), webhook_timestamp=None), 401, "signature_missing"
    ),
    "no-signature": Case(
        lambda now: changed(genuine(now), webhook_signature=None), 401, "signature_missing"
    ),
    "empty-signature": Case(
        lambda now: changed(genuine(now), webhook_signature=""), 401, "signature_invalid"
    ),
    "empty-id": Case(lambda now: changed(genuine(now), webhook_id=""), 401, "signature_invalid"),
    # --- forged --------------------------------------------------------------------------
    "wrong-secret": Case(
        lambda now: reference(event_body(), now, secret=OTHER_SECRET), 401, "signature_invalid"
    ),
    "signature-of-another-body": Case(
        lambda now: changed(genuine(now), webhook_signature=genuine(now).headers[SIG]),
        401,
        "signature_invalid",
    ),
    "one-byte-changed": Case(
        lambda now: with_body(d := genuine(now), d.body.replace(b"img-1", b"img-2")),
        401,
        "signature_invalid",
    ),
    "body-truncated": Case(
        lambda now: with_body(d := genuine(now), d.body[:-1]), 401, "signature_invalid"
    ),
    "body-empty": Case(lambda now: with_body(genuine(now), b""), 401, "signature_invalid"),
    "id-header-swapped": Case(
        lambda now: changed(genuine(now), webhook_id=random_id()), 401, "signature_invalid"
    ),
    "zero-signature": Case(
        lambda now: changed(genuine(now), webhook_signature="v1," + B64_ZEROS),
        401,
        "signature_invalid",
    ),
    "raw-hex-not-base64": Case(
        lambda now: changed(genuine(now), webhook_signature="v1," + "ab" * 32),
        401,
        "signature_invalid",
    ),
    "broken-base64": Case(
        lambda now: changed(genuine(now), webhook_signature="v1,@@not*base64@@"),
        401,
        "signature_invalid",
    ),
    "entry-without-comma": Case(
        lambda now: changed(genuine(now), webhook_signature="v1" + B64_ZEROS),
        401,
        "signature_invalid",
    ),
    "only-unknown-version": Case(
        lambda now: changed(
            d := genuine(now), webhook_signature=d.headers[SIG].replace("v1,", "v9,")
        ),
        401,
        "signature_invalid",
    ),
    "good-entry-after-sixteen-bogus": Case(
        lambda now: changed(
            d := genuine(now),
            webhook_signature=" ".join(["v1," + B64_ZEROS] * 16 + [d.headers[SIG]]),
        ),
        401,
        "signature_invalid",
    ),
    "non-ascii-signature": Case(
        lambda now: changed(genuine(now), webhook_signature="v1,caf\u00e9\u2615"),
        401,
        "signature_invalid",
    ),
    "non-ascii-id": Case(
        lambda now: changed(genuine(now), webhook_id="evt_\u00e9\u65e5"), 401, "signature_invalid"
    ),
    "control-chars-in-timestamp": Case(
        lambda now: changed(genuine(now), webhook_timestamp=f"{now}\x01"),
        401,
        "signature_invalid",
    ),
    "huge-signature-header": Case(
        lambda now: changed(
            d := genuine(now), webhook_signature=d.headers[SIG] + " v1," + "A" * 20_000
        ),
        401,
        "signature_invalid",
    ),
    "huge-id-header": Case(
        lambda now: changed(genuine(now), webhook_id="evt_" + "x" * 20_000),
        401,
        "signature_invalid",
    ),
    "signed-256-char-id": Case(lambda now: long_id_delivery(now, 256), 401, "signature_invalid"),
    "signed-nul-in-id": Case(nul_id_delivery, 401, "signature_invalid"),
    # --- replayed, stale, future ---------------------------------------------------------
    "replay-with-modified-timestamp": Case(
        lambda now: changed(resigned_timestamp(now, now - 400), webhook_timestamp=str(now)),
        401,
        "signature_invalid",
    ),
    "stale-by-one-second": Case(
        lambda now: reference(event_body(), now - 302), 401, "timestamp_out_of_tolerance"
    ),
    "replay-a-day-later": Case(
        lambda now: reference(event_body(), now - 86_400), 401, "timestamp_out_of_tolerance"
    ),
    "future": Case(
        lambda now: reference(event_body(), now + 400), 401, "timestamp_out_of_tolerance"
    ),
    "timestamp-milliseconds": Case(
        lambda now: Delivery(
            b := event_body(),
            signed_delivery(b, webhook_id=json.loads(b)["id"], timestamp=now * 1000)[1],
        ),
        401,
        "signature_invalid",
    ),
    "timestamp-not-a-number": Case(
        lambda now: changed(genuine(now), webhook_timestamp="yesterday"), 401, "signature_invalid"
    ),
    "timestamp-negative": Case(
        lambda now: changed(genuine(now), webhook_timestamp="-5"), 401, "signature_invalid"
    ),
    "timestamp-fractional": Case(
        lambda now: changed(genuine(now), webhook_timestamp=f"{now}.5"), 401, "signature_invalid"
    ),
    # --- size and method -----------------------------------------------------------------
    "oversized-content-length": Case(
        lambda now: reference(event_body(pad="x" * 1_048_576), now), 413, "body_too_large"
    ),
    "get": Case(lambda now: with_method(genuine(now), "GET"), 405, "method_not_allowed"),
    "put": Case(lambda now: with_method(genuine(now), "PUT"), 405, "method_not_allowed"),
    "get-trailing-slash": Case(
        lambda now: with_method(genuine(now), "GET", PATH + "/"), 405, "method_not_allowed"
    ),
    "delete": Case(lambda now: with_method(genuine(now), "DELETE"), 405, "method_not_allowed"),
    # --- verified, but not something to act on ------------------------------------------
    "id-header-differs-from-body": Case(
        lambda now: reference(event_body(), now, msg_id=random_id()), 400, "event_id_mismatch"
    ),
    "verified-array-body": Case(
        lambda now: reference(b"[1, 2, 3]", now, msg_id=random_id()), 202, outcome=QUARANTINED
    ),
    "verified-not-json": Case(
        lambda now: reference(b"not json at all", now, msg_id=random_id()),
        202,
        outcome=QUARANTINED,
    ),
    "verified-unknown-type": Case(
        lambda now: reference(event_body(type="chat.completed"), now), 202, outcome=QUARANTINED
    ),
    "verified-long-unknown-type": Case(
        lambda now: reference(event_body(type="generation." + "x" * 150), now),
        202,
        outcome=QUARANTINED,
    ),
    "verified-missing-task-id": Case(
        lambda now: reference(event_body(data={"status": "succeeded"}), now),
        202,
        outcome=QUARANTINED,
    ),
    "verified-data-not-object": Case(
        lambda now: reference(event_body(data="t_1"), now), 202, outcome=QUARANTINED
    ),
    # --- the timestamped-hmac scheme through the app -------------------------------------
    "ts-genuine": Case(
        lambda now: timestamped(event_body(), now),
        202,
        outcome=ACCEPTED,
        scheme=contract.SCHEME_TIMESTAMPED_HMAC,
    ),
    "ts-missing": Case(
        lambda now: Delivery(event_body(), {}),
        401,
        "signature_missing",
        scheme=contract.SCHEME_TIMESTAMPED_HMAC,
    ),
    "ts-wrong-secret": Case(
        lambda now: timestamped(event_body(), now, secret=OTHER_SECRET),
        401,
        "signature_invalid",
        scheme=contract.SCHEME_TIMESTAMPED_HMAC,
    ),
    "ts-body-changed": Case(
        lambda now: with_body(d := timestamped(event_body(), now), d.body + b" "),
        401,
        "signature_invalid",
        scheme=contract.SCHEME_TIMESTAMPED_HMAC,
    ),
    "ts-stale": Case(
        lambda now: timestamped(event_body(), now - 400),
        401,
        "timestamp_out_of_tolerance",
        scheme=contract.SCHEME_TIMESTAMPED_HMAC,
    ),
    "ts-replay-with-modified-timestamp": Case(
        lambda now: changed(
            d := timestamped(event_body(), now - 400),
            Rivya_Signature=d.headers["Rivya-Signature"].replace(f"t={now - 400}", f"t={now}"),
        ),
        401,
        "signature_invalid",
        scheme=contract.SCHEME_TIMESTAMPED_HMAC,
    ),
    "ts-standard-headers-sent": Case(
        genuine, 401, "signature_missing", scheme=contract.SCHEME_TIMESTAMPED_HMAC
    ),
    "ts-verified-not-json": Case(
        lambda now: timestamped(b"\xff\xfe not json", now),
        202,
        outcome=QUARANTINED,
        scheme=contract.SCHEME_TIMESTAMPED_HMAC,
    ),
    "ts-verified-control-chars-in-ids": Case(
        lambda now: timestamped(
            event_body(id="evt_\x00nul", type="generation.\x00", data={"id": "t\x00"}), now
        ),
        202,
        outcome=QUARANTINED,
        scheme=contract.SCHEME_TIMESTAMPED_HMAC,
    ),
}


@pytest.fixture
def clients(app: Flask, settings: Settings) -> Any:
    """Return a function giving the test client of the app for a scheme."""
    apps = {contract.SCHEME_STANDARD: app}

    def client_for(scheme: str) -> FlaskClient:
        if scheme not in apps:
            apps[scheme] = create_app(settings.replace(webhook_scheme=scheme))
        return apps[scheme].test_client()

    yield client_for
    for other in apps.values():
        if other is not app:
            close_app(other)


def rows(sessions: sessionmaker[Session]) -> list[WebhookEvent]:
    with sessions() as session:
        return list(session.scalars(select(WebhookEvent)))


def assert_discloses_nothing(data: bytes, delivery: Delivery) -> None:
    text = data.decode("utf-8", "replace")
    for secret in (SECRET, OTHER_SECRET):
        assert secret not in text
        assert secret.removeprefix("whsec_") not in text
    for name, value in delivery.headers.items():
        if name.lower() in {SIG, "rivya-signature"} and len(value) >= 8:
            assert value not in text
            for entry in value.replace(",", " ").split():
                if len(entry) >= 16:
                    assert entry not in text
    if len(delivery.body) >= 16:
        assert delivery.body not in data


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 25
    assert {c.status for c in CASES.values()} >= {202, 400, 401, 405, 413}


@pytest.mark.parametrize("name", list(CASES))
def test_delivery(name: str, clients: Any, sessions: sessionmaker[Session]) -> None:
    case = CASES[name]
    delivery = case.build(int(time.time()))
    response = clients(case.scheme).open(
        delivery.path, method=delivery.method, data=delivery.body, headers=delivery.headers
    )

    assert response.status_code == case.status, response.data
    assert not 300 <= response.status_code < 400  # Rivya follows no redirect
    assert response.is_json
    assert_discloses_nothing(response.data, delivery)
    stored = rows(sessions)
    if case.status >= 400:
        assert response.json == {"error": {"code": case.code}}
        assert stored == []
        return
    assert response.json == {"status": case.outcome}
    assert len(stored) == 1
    row = stored[0]
    assert row.body == delivery.body
    if case.outcome == QUARANTINED:
        assert row.status is EventStatus.QUARANTINED
        assert row.status_reason
    else:
        assert row.status is EventStatus.RECEIVED
        assert row.next_attempt_at is not None
        assert row.event_id == json.loads(delivery.body)["id"]


def test_redelivery_is_a_duplicate_with_one_row(client: FlaskClient, sessions: Any) -> None:
    delivery = genuine(int(time.time()))
    first = client.post(PATH, data=delivery.body, headers=delivery.headers)
    again = client.post(PATH + "/", data=delivery.body, headers=delivery.headers)
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json == {"status": "duplicate"}
    assert len(rows(sessions)) == 1


def test_quarantined_redelivery_stays_one_row(client: FlaskClient, sessions: Any) -> None:
    delivery = reference(b"[]", int(time.time()), msg_id=random_id())
    statuses = [client.post(PATH, data=delivery.body, headers=delivery.headers).status_code]
    statuses.append(client.post(PATH, data=delivery.body, headers=delivery.headers).status_code)
    assert statuses == [202, 200]
    (row,) = rows(sessions)
    assert row.status is EventStatus.QUARANTINED
    assert row.event_id == delivery.headers["webhook-id"]


def test_rotation_either_secret_is_stored_with_its_fingerprint(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    app = create_app(settings.replace(webhook_secrets=(SECRET, OTHER_SECRET)))
    try:
        client = app.test_client()
        now = int(time.time())
        for secret in (SECRET, OTHER_SECRET):
            delivery = reference(event_body(), now, secret=secret)
            assert (
                client.post(PATH, data=delivery.body, headers=delivery.headers).status_code == 202
            )
    finally:
        close_app(app)
    prints = sorted(row.secret_fingerprint or "" for row in rows(sessions))
    assert prints == sorted(signatures.fingerprint(s) for s in (SECRET, OTHER_SECRET))


def test_stored_headers_keep_the_signature_but_not_others(
    client: FlaskClient, sessions: Any
) -> None:
    delivery = genuine(int(time.time()))
    delivery.headers["Authorization"] = "Bearer should-not-be-stored"
    delivery.headers["Cookie"] = "session=also-not"
    assert client.post(PATH, data=delivery.body, headers=delivery.headers).status_code == 202
    (row,) = rows(sessions)
    assert row.headers[SIG] == delivery.headers[SIG]
    assert "authorization" not in row.headers
    assert "cookie" not in row.headers
    assert "should-not-be-stored" not in json.dumps(row.headers)


def test_a_delivery_signed_only_v1a_is_stored_under_its_public_key(
    settings: Settings, make_app: Callable[[Settings], Flask], tmp_path: Path
) -> None:
    provider = openssl_key(tmp_path, "provider")
    app = make_app(settings.replace(webhook_public_keys=(provider.public,)))
    event = make_event()
    body = json.dumps(event).encode()
    ts = int(time.time())
    signature = provider.sign(f"{event['id']}.{ts}.".encode() + body, tmp_path)
    answer = app.test_client().post(
        PATH,
        data=body,
        headers={
            contract.STANDARD_ID_HEADER: str(event["id"]),
            contract.STANDARD_TIMESTAMP_HEADER: str(ts),
            contract.STANDARD_SIGNATURE_HEADER: f"v1a,{signature}",
            "Content-Type": "application/json",
        },
    )
    assert answer.status_code == 202, answer.text
    with app.extensions["rivyahooks"].sessions() as session:
        stored = session.scalars(select(WebhookEvent)).one()
    assert stored.secret_fingerprint == fingerprint(provider.public)
