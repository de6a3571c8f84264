"""Standard Webhooks v1a: ed25519 signatures, checked against `whpk_` public keys.

The signatures are made by the openssl command, from the spec's description of the signed
content (`{webhook-id}.{webhook-timestamp}.{body}`), not by the code under test.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest

from rivyahooks_protocol import contract, signatures
from rivyahooks_protocol.signatures import SignatureError, Verifier
from tests.conftest import SECRET
from tests.support.ed25519 import OpensslKey, openssl_key

BODY = b'{"id": "evt_v1a", "type": "generation.succeeded", "data": {"id": "task_v1a"}}'


@pytest.fixture
def key(tmp_path: Path) -> OpensslKey:
    return openssl_key(tmp_path, "provider")


def _headers(signature: str, ts: int, webhook_id: str = "msg_v1a") -> dict[str, str]:
    return {
        contract.STANDARD_ID_HEADER: webhook_id,
        contract.STANDARD_TIMESTAMP_HEADER: str(ts),
        contract.STANDARD_SIGNATURE_HEADER: signature,
    }


def test_a_v1a_signature_verifies_under_its_public_key(key: OpensslKey, tmp_path: Path) -> None:
    ts = int(time.time())
    signature = key.sign(f"msg_v1a.{ts}.".encode() + BODY, tmp_path)
    verifier = Verifier(contract.SCHEME_STANDARD, [SECRET], 300, [key.public])
    verified = verifier.verify(_headers(f"v1a,{signature}", ts), BODY)
    # Secrets first, then public keys: index 1 is the first public key.
    assert (verified.secret_index, verified.timestamp, verified.webhook_id) == (1, ts, "msg_v1a")


def test_a_v1a_signature_of_other_bytes_or_another_key_is_refused(
    key: OpensslKey, tmp_path: Path
) -> None:
    ts = int(time.time())
    other_key = openssl_key(tmp_path, "stranger")
    verifier = Verifier(contract.SCHEME_STANDARD, [SECRET], 300, [key.public])
    tampered = key.sign(f"msg_v1a.{ts}.".encode() + BODY + b" ", tmp_path)
    foreign = other_key.sign(f"msg_v1a.{ts}.".encode() + BODY, tmp_path)
    other_id = key.sign(f"msg_other.{ts}.".encode() + BODY, tmp_path)
    for entry in (f"v1a,{tampered}", f"v1a,{foreign}", f"v1a,{other_id}"):
        with pytest.raises(SignatureError) as caught:
            verifier.verify(_headers(entry, ts), BODY)
        assert caught.value.code == signatures.INVALID


def test_without_public_keys_a_v1a_entry_alone_is_not_enough(
    key: OpensslKey, tmp_path: Path
) -> None:
    ts = int(time.time())
    signature = key.sign(f"msg_v1a.{ts}.".encode() + BODY, tmp_path)
    with pytest.raises(SignatureError) as caught:
        Verifier(contract.SCHEME_STANDARD, [SECRET], 300).verify(
            _headers(f"v1a,{signature}", ts), BODY
        )
    assert caught.value.code == signatures.INVALID


def test_v1_and_v1a_entries_side_by_side(key: OpensslKey, tmp_path: Path) -> None:
    ts = int(time.time())
    asymmetric = key.sign(f"msg_v1a.{ts}.".encode() + BODY, tmp_path)
    v1 = signatures.sign(
        contract.SCHEME_STANDARD, [SECRET], BODY, webhook_id="msg_v1a", timestamp=ts
    )
    both = f"{v1[contract.STANDARD_SIGNATURE_HEADER]} v1a,{asymmetric}"
    verifier = Verifier(contract.SCHEME_STANDARD, [SECRET], 300, [key.public])
    assert verifier.verify(_headers(both, ts), BODY).secret_index == 0  # the secret's
    # The timestamp window holds for v1a too.
    old = ts - 3600
    stale = key.sign(f"msg_v1a.{old}.".encode() + BODY, tmp_path)
    with pytest.raises(SignatureError) as caught:
        verifier.verify(_headers(f"v1a,{stale}", old), BODY)
    assert caught.value.code == signatures.OUT_OF_TOLERANCE


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("whsec_" + base64.b64encode(bytes(32)).decode(), "does not start with whpk_"),
        ("whpk_not base64!", "is not whpk_ followed by base64"),
        ("whpk_" + base64.b64encode(bytes(31)).decode(), "decodes to 31 bytes"),
    ],
)
def test_an_unusable_public_key_is_refused(value: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        signatures.public_key(value)


def test_public_keys_belong_to_the_standard_scheme(key: OpensslKey) -> None:
    with pytest.raises(ValueError, match="Standard Webhooks"):
        Verifier(contract.SCHEME_TIMESTAMPED_HMAC, ["whsec_x"], 300, [key.public])
