"""Both signature schemes against independent oracles, rotation, and hostile headers.

The standard scheme is checked against the `standardwebhooks` reference implementation in
both directions; the timestamped-hmac scheme against HMACs written out here with the
standard library, so neither direction trusts our own signing code alone.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import time

import pytest
from standardwebhooks.webhooks import Webhook

from rivyahooks_protocol import contract, signatures
from rivyahooks_protocol.signatures import SignatureError, Verifier
from tests.conftest import OTHER_SECRET, SECRET

STANDARD = contract.SCHEME_STANDARD
TIMESTAMPED = contract.SCHEME_TIMESTAMPED_HMAC
BODY = json.dumps({"id": "evt_1", "type": "generation.succeeded", "data": {"id": "t1"}}).encode()


def reference_headers(secret: str, msg_id: str, ts: int, body: bytes) -> dict[str, str]:
    """Return standard-scheme headers signed by the reference implementation."""
    when = dt.datetime.fromtimestamp(ts, tz=dt.UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": Webhook(secret).sign(msg_id, when, body.decode()),
    }


def hmac_hex(secret: str, ts: int, body: bytes) -> str:
    """Return the timestamped-hmac v1 value, computed without our code."""
    message = f"{ts}.".encode() + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


# --- standard scheme: the reference implementation is the oracle --------------------------


@pytest.mark.parametrize(
    "body",
    [
        BODY,
        b"{}",
        '{"prompt": "caf\u00e9 \u2615 \u65e5\u672c"}'.encode(),
        b'{"a": "' + b"x" * 100_000 + b'"}',
    ],
    ids=["event", "empty-object", "non-ascii", "large"],
)
def test_reference_signature_verifies(body: bytes) -> None:
    now = int(time.time())
    headers = reference_headers(SECRET, "evt_ref", now, body)
    verified = Verifier(STANDARD, [SECRET], 300).verify(headers, body)
    assert verified.secret_index == 0
    assert verified.timestamp == now
    assert verified.webhook_id == "evt_ref"


def test_our_signature_verifies_with_reference() -> None:
    headers = signatures.sign(STANDARD, [SECRET], BODY, webhook_id="evt_ours")
    # The reference verifies against the current clock and returns the parsed body.
    assert Webhook(SECRET).verify(BODY, headers) == json.loads(BODY)


def test_our_rotation_header_verifies_with_reference_for_each_secret() -> None:
    headers = signatures.sign(STANDARD, [OTHER_SECRET, SECRET], BODY, webhook_id="evt_rot")
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (SECRET, OTHER_SECRET):
        Webhook(secret).verify(BODY, headers)


def test_reference_rejects_our_signature_for_another_body() -> None:
    from standardwebhooks.webhooks import WebhookVerificationError

    headers = signatures.sign(STANDARD, [SECRET], BODY, webhook_id="evt_x")
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(BODY + b" ", headers)


def test_reference_signature_for_another_secret_is_rejected() -> None:
    now = int(time.time())
    headers = reference_headers(OTHER_SECRET, "evt_ref", now, BODY)
    with pytest.raises(SignatureError) as caught:
        Verifier(STANDARD, [SECRET], 300).verify(headers, BODY)
    assert caught.value.code == signatures.INVALID


def test_signed_content_includes_the_id() -> None:
    now = int(time.time())
    headers = reference_headers(SECRET, "evt_a", now, BODY)
    headers["webhook-id"] = "evt_b"
    with pytest.raises(SignatureError) as caught:
        Verifier(STANDARD, [SECRET], 300).verify(headers, BODY)
    assert caught.value.code == signatures.INVALID


# --- timestamped-hmac: vectors computed here ----------------------------------------------


def test_timestamped_sign_matches_independent_vector() -> None:
    ts = 1_778_493_600
    headers = signatures.sign(TIMESTAMPED, [SECRET], BODY, webhook_id="unused", timestamp=ts)
    assert headers == {"Rivya-Signature": f"t={ts},v1={hmac_hex(SECRET, ts, BODY)}"}


def test_timestamped_fixed_vector() -> None:
    # Pinned once from the standard library, so a change to the key or message is caught
    # even if both our signer and our verifier changed together.
    secret = "whsec_dGVzdA=="
    ts = 1_700_000_000
    body = b'{"id":"evt_1"}'
    expected = hmac.new(b"whsec_dGVzdA==", b'1700000000.{"id":"evt_1"}', hashlib.sha256).hexdigest()
    assert hmac_hex(secret, ts, body) == expected
    header = {"Rivya-Signature": f"t={ts},v1={expected}"}
    verified = Verifier(TIMESTAMPED, [secret], 300).verify(header, body, now=ts + 10)
    assert verified.timestamp == ts
    assert verified.webhook_id is None


def test_timestamped_independent_signature_verifies() -> None:
    now = int(time.time())
    header = {"Rivya-Signature": f"t={now},v1={hmac_hex(SECRET, now, BODY)}"}
    assert Verifier(TIMESTAMPED, [SECRET], 300).verify(header, BODY).secret_index == 0


def test_timestamped_key_is_the_whole_secret_not_its_base64_part() -> None:
    now = int(time.time())
    decoded_key = base64.b64decode(SECRET.removeprefix("whsec_"))
    wrong = hmac.new(decoded_key, f"{now}.".encode() + BODY, hashlib.sha256).hexdigest()
    with pytest.raises(SignatureError) as caught:
        Verifier(TIMESTAMPED, [SECRET], 300).verify(
            {"Rivya-Signature": f"t={now},v1={wrong}"}, BODY
        )
    assert caught.value.code == signatures.INVALID


def test_timestamped_modified_timestamp_is_rejected() -> None:
    now = int(time.time())
    header = {"Rivya-Signature": f"t={now - 1},v1={hmac_hex(SECRET, now, BODY)}"}
    with pytest.raises(SignatureError) as caught:
        Verifier(TIMESTAMPED, [SECRET], 300).verify(header, BODY)
    assert caught.value.code == signatures.INVALID


# --- rotation and several entries ---------------------------------------------------------


@pytest.mark.parametrize("scheme", [STANDARD, TIMESTAMPED])
@pytest.mark.parametrize(("signing", "index"), [(SECRET, 0), (OTHER_SECRET, 1)])
def test_either_configured_secret_verifies(scheme: str, signing: str, index: int) -> None:
    verifier = Verifier(scheme, [SECRET, OTHER_SECRET], 300)
    headers = signatures.sign(scheme, [signing], BODY, webhook_id="evt_rot")
    assert verifier.verify(headers, BODY).secret_index == index


def test_reference_signed_with_new_secret_reports_its_index() -> None:
    now = int(time.time())
    headers = reference_headers(OTHER_SECRET, "evt_new", now, BODY)
    verified = Verifier(STANDARD, [SECRET, OTHER_SECRET], 300).verify(headers, BODY)
    assert verified.secret_index == 1


def test_any_matching_entry_among_several_verifies() -> None:
    now = int(time.time())
    good = reference_headers(SECRET, "evt_m", now, BODY)["webhook-signature"]
    bogus = "v1," + base64.b64encode(b"\0" * 32).decode()
    foreign = reference_headers(OTHER_SECRET, "evt_m", now, BODY)["webhook-signature"]
    headers = reference_headers(SECRET, "evt_m", now, BODY)
    headers["webhook-signature"] = f"{bogus} {foreign} {good}"
    assert Verifier(STANDARD, [SECRET], 300).verify(headers, BODY).secret_index == 0


def test_timestamped_any_matching_entry_among_several_verifies() -> None:
    now = int(time.time())
    header = f"t={now},v1={'00' * 32},v1={hmac_hex(OTHER_SECRET, now, BODY)}"
    verified = Verifier(TIMESTAMPED, [SECRET, OTHER_SECRET], 300).verify(
        {"Rivya-Signature": header}, BODY
    )
    assert verified.secret_index == 1


@pytest.mark.parametrize(
    "prefix",
    ["v2,AAAA", "v1a,Zm9v", "v0,notbase64!", "w1,", "v1", "v1,###"],
)
def test_unknown_versions_and_broken_entries_are_ignored(prefix: str) -> None:
    now = int(time.time())
    headers = reference_headers(SECRET, "evt_v", now, BODY)
    headers["webhook-signature"] = f"{prefix} {headers['webhook-signature']}"
    assert Verifier(STANDARD, [SECRET], 300).verify(headers, BODY).secret_index == 0


def test_only_unknown_versions_is_invalid() -> None:
    now = int(time.time())
    headers = reference_headers(SECRET, "evt_v", now, BODY)
    value = headers["webhook-signature"].split(",", 1)[1]
    headers["webhook-signature"] = f"v2,{value}"
    with pytest.raises(SignatureError) as caught:
        Verifier(STANDARD, [SECRET], 300).verify(headers, BODY)
    assert caught.value.code == signatures.INVALID


def test_timestamped_unknown_versions_are_ignored() -> None:
    now = int(time.time())
    header = f"t={now},v0=abc,v2={hmac_hex(SECRET, now, BODY)},v1={hmac_hex(SECRET, now, BODY)}"
    verified = Verifier(TIMESTAMPED, [SECRET], 300).verify({"Rivya-Signature": header}, BODY)
    assert (verified.secret_index, verified.timestamp) == (0, now)


# --- time window ----------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", [STANDARD, TIMESTAMPED])
@pytest.mark.parametrize(
    ("offset", "ok"), [(-300, True), (300, True), (-301, False), (301, False), (-86400, False)]
)
def test_tolerance_window_both_ways(scheme: str, offset: int, ok: bool) -> None:
    ts = 1_800_000_000
    headers = signatures.sign(scheme, [SECRET], BODY, webhook_id="evt_t", timestamp=ts)
    verifier = Verifier(scheme, [SECRET], 300)
    if ok:
        assert verifier.verify(headers, BODY, now=ts - offset).timestamp == ts
    else:
        with pytest.raises(SignatureError) as caught:
            verifier.verify(headers, BODY, now=ts - offset)
        assert caught.value.code == signatures.OUT_OF_TOLERANCE


# --- hostile headers: always a SignatureError with a known code --------------------------


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"webhook-id": None}, signatures.MISSING),
        ({"webhook-timestamp": None}, signatures.MISSING),
        ({"webhook-signature": None}, signatures.MISSING),
        ({"webhook-id": ""}, signatures.INVALID),
        ({"webhook-id": "x" * 300}, signatures.INVALID),
        ({"webhook-id": "évt"}, signatures.INVALID),
        ({"webhook-timestamp": "-1"}, signatures.INVALID),
        ({"webhook-timestamp": "1e9"}, signatures.INVALID),
        ({"webhook-timestamp": "\uff11\uff12\uff13"}, signatures.INVALID),  # full-width digits
        ({"webhook-timestamp": "9" * 40}, signatures.INVALID),
        ({"webhook-signature": ""}, signatures.INVALID),
        ({"webhook-signature": "v1,"}, signatures.INVALID),
        ({"webhook-signature": "v1,=====" * 700}, signatures.INVALID),
        ({"webhook-signature": "v1,ä"}, signatures.INVALID),
    ],
)
def test_malformed_standard_headers(change: dict[str, str | None], code: str) -> None:
    headers: dict[str, str] = signatures.sign(STANDARD, [SECRET], BODY, webhook_id="evt_h")
    for name, value in change.items():
        if value is None:
            del headers[name]
        else:
            headers[name] = value
    with pytest.raises(SignatureError) as caught:
        Verifier(STANDARD, [SECRET], 300).verify(headers, BODY)
    assert caught.value.code == code


@pytest.mark.parametrize(
    "header",
    ["", "t=", "v1=abc", "t=abc,v1=00", "t=123", "garbage", "t=1,t=2", "t=\u00e9,v1=00", "=,=,="],
)
def test_malformed_timestamped_headers(header: str) -> None:
    with pytest.raises(SignatureError) as caught:
        Verifier(TIMESTAMPED, [SECRET], 300).verify({"Rivya-Signature": header}, BODY)
    assert caught.value.code in {signatures.INVALID, signatures.OUT_OF_TOLERANCE}


def test_verifier_refuses_bad_configuration() -> None:
    with pytest.raises(ValueError, match="scheme"):
        Verifier("hmac-md5", [SECRET], 300)
    with pytest.raises(ValueError, match="secret"):
        Verifier(STANDARD, [], 300)
    with pytest.raises(ValueError, match="base64"):
        Verifier(STANDARD, ["whsec_!!!"], 300)


def test_fingerprint_does_not_reveal_the_secret() -> None:
    print_ = signatures.fingerprint(SECRET)
    assert len(print_) == 12
    assert print_ not in SECRET
    assert print_ != signatures.fingerprint(OTHER_SECRET)
