"""Property-based fuzzing of the webhook endpoint: never a 5xx, never an unverified row.

The app and its database are shared by every example of a test (hypothesis runs them inside
one function call), so the assertions are cumulative: the inbox must stay empty for as long
as nothing verified was sent.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from models.events import WebhookEvent
from receiver import create_app
from rivyahooks_foundation.settings import Settings
from rivyahooks_protocol import contract, signatures
from tests.conftest import SECRET, close_app, make_event, signed_delivery

PATH = "/webhooks/rivya"
FUZZ = settings(
    max_examples=200,
    deadline=None,
    # The fixtures are set up once per test, on purpose: every example must leave them as
    # they were (no row), which is what the test asserts.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=False,
)

# Header values the test client can send: anything but line breaks, which it refuses.
header_text = st.text(
    alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=["Cs"]),
    max_size=300,
)


def base64_text(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


signature_like = st.one_of(
    header_text,
    st.lists(
        st.tuples(
            st.sampled_from(["v1", "v2", "v1a", "", "V1"]),
            st.sampled_from([",", "=", ""]),
            st.one_of(
                st.binary(max_size=48).map(lambda b: base64.b64encode(b).decode()), header_text
            ),
        ).map("".join),
        max_size=20,
    ).map(" ".join),
)
timestamp_like = st.one_of(
    header_text,
    st.integers(min_value=-(10**15), max_value=10**15).map(str),
    st.integers(min_value=-600, max_value=600).map(lambda d: str(int(time.time()) + d)),
)
bodies = st.one_of(
    st.binary(max_size=2048),
    st.builds(lambda: json.dumps(make_event()).encode()),
)


@pytest.fixture
def timestamped_client(settings: Settings) -> Iterator[FlaskClient]:
    app: Flask = create_app(settings.replace(webhook_scheme=contract.SCHEME_TIMESTAMPED_HMAC))
    yield app.test_client()
    close_app(app)


def row_count(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count()).select_from(WebhookEvent)) or 0)


def post(client: FlaskClient, body: bytes, headers: dict[str, str]) -> Any:
    response = client.post(PATH, data=body, headers=headers)
    assert response.status_code < 500, response.data
    assert response.is_json
    return response


@FUZZ
@given(
    webhook_id=st.none() | header_text,
    timestamp=st.none() | timestamp_like,
    signature=st.none() | signature_like,
    body=bodies,
    extra=st.dictionaries(
        st.sampled_from(["Content-Type", "User-Agent", "Rivya-Signature", "X-Anything"]),
        header_text,
        max_size=3,
    ),
)
def test_random_headers_and_bodies_are_refused(
    client: FlaskClient,
    sessions: sessionmaker[Session],
    webhook_id: str | None,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    extra: dict[str, str],
) -> None:
    headers = dict(extra)
    for name, value in (
        ("webhook-id", webhook_id),
        ("webhook-timestamp", timestamp),
        ("webhook-signature", signature),
    ):
        if value is not None:
            headers[name] = value
    response = post(client, body, headers)
    assert response.status_code == 401
    assert response.json["error"]["code"] in {
        signatures.MISSING,
        signatures.INVALID,
        signatures.OUT_OF_TOLERANCE,
    }
    assert row_count(sessions) == 0


@st.composite
def mutated(draw: st.DrawFn, body: bytes) -> bytes:
    """Return `body` changed by at least one byte."""
    kind = draw(st.sampled_from(["flip", "insert", "delete", "append", "replace"]))
    position = draw(st.integers(min_value=0, max_value=max(len(body) - 1, 0)))
    if kind == "flip" and body:
        bit = 1 << draw(st.integers(min_value=0, max_value=7))
        out = body[:position] + bytes([body[position] ^ bit]) + body[position + 1 :]
    elif kind == "delete" and body:
        out = body[:position] + body[position + 1 :]
    elif kind == "replace":
        out = draw(st.binary(max_size=512))
    elif kind == "insert":
        out = body[:position] + draw(st.binary(min_size=1, max_size=8)) + body[position:]
    else:
        out = body + draw(st.binary(min_size=1, max_size=8))
    if out == body:
        out = body + b"\0"
    return out


@FUZZ
@given(data=st.data(), body=bodies)
def test_valid_signature_over_another_body_is_refused(
    client: FlaskClient, sessions: sessionmaker[Session], data: st.DataObject, body: bytes
) -> None:
    signed_body, headers = signed_delivery(body, webhook_id="evt_fuzz")
    sent = data.draw(mutated(signed_body))
    response = post(client, sent, headers)
    assert response.status_code == 401
    assert response.json == {"error": {"code": signatures.INVALID}}
    assert row_count(sessions) == 0


@FUZZ
@given(
    header=st.one_of(
        header_text,
        st.lists(
            st.tuples(st.sampled_from(["t", "v1", "v0", " t", ""]), st.just("="), header_text).map(
                "".join
            ),
            max_size=20,
        ).map(",".join),
    ),
    body=bodies,
)
def test_timestamped_scheme_random_headers_are_refused(
    timestamped_client: FlaskClient, sessions: sessionmaker[Session], header: str, body: bytes
) -> None:
    response = post(timestamped_client, body, {"Rivya-Signature": header})
    assert response.status_code == 401
    assert row_count(sessions) == 0


@FUZZ
@given(
    webhook_id=st.text(
        alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=["Cs"]),
        min_size=1,
        max_size=300,
    ),
    body=bodies,
    user_agent=header_text,
)
def test_verified_random_deliveries_never_fail_the_server(
    client: FlaskClient,
    sessions: sessionmaker[Session],
    webhook_id: str,
    body: bytes,
    user_agent: str,
) -> None:
    # Correctly signed, so these may be stored; the property is that no genuine delivery,
    # however odd, gets a 5xx that Rivya would retry for days.
    before = row_count(sessions)
    _, headers = signed_delivery(body, webhook_id=webhook_id)
    headers["User-Agent"] = user_agent
    response = post(client, body, headers)
    after = row_count(sessions)
    if response.status_code in {200, 202}:
        assert after - before in {0, 1}
    else:
        assert response.status_code in {400, 401}
        assert after == before


def test_secret_is_the_only_thing_the_fuzzer_lacks(client: FlaskClient, sessions: Any) -> None:
    # Guards the fuzz tests above against passing vacuously: the same request, signed, is taken.
    body, headers = signed_delivery(make_event())
    assert post(client, body, headers).status_code == 202
    assert row_count(sessions) == 1
    assert SECRET not in json.dumps(headers)
