"""Webhook signature schemes, both ways: sign (the simulator, our messages to apps) and verify.

Verification never parses the body; it works on the raw bytes and a header mapping, and it
fails closed with a typed error whose `code` is safe to show to the sender. Header values are
attacker-controlled, so every parse step is bounded and total: a malformed header is a
`signature_invalid`, never an exception of another kind.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from rivyahooks_protocol import contract

# A real header holds a handful of short entries; anything far larger is an attack or a bug,
# and refusing it early keeps the cost of a forged request small.
MAX_SIGNATURE_HEADER_CHARS = 4096
MAX_SIGNATURE_ENTRIES = 16
# The width of the event_id column: a longer id could never be stored, so it is refused here
# (401) instead of failing the insert (a 5xx Rivya would retry for days).
MAX_ID_HEADER_CHARS = 255


class SignatureError(Exception):
    """A delivery failed verification; `code` is the error code we answer with."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


MISSING = "signature_missing"
INVALID = "signature_invalid"
OUT_OF_TOLERANCE = "timestamp_out_of_tolerance"


@dataclass(frozen=True)
class Verified:
    """What a successful verification tells the caller."""

    # Position of the key that matched: the secrets' list, then the public keys' after it.
    secret_index: int
    timestamp: int
    webhook_id: str | None  # the id header, when the scheme has one


def _secret_key_standard(secret: str) -> bytes:
    """Return the HMAC key of a Standard Webhooks secret: base64 of what follows whsec_."""
    raw = secret.removeprefix(contract.SIGNING_SECRET_PREFIX)
    return base64.b64decode(raw, validate=True)


def _secret_key_timestamped(secret: str) -> bytes:
    return secret.encode("utf-8")


def secret_key(scheme: str, secret: str) -> bytes:
    """Return the HMAC key a scheme derives from a `whsec_` secret; ValueError if unusable."""
    if scheme == contract.SCHEME_STANDARD:
        try:
            return _secret_key_standard(secret)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("the part after whsec_ is not valid base64") from exc
    if scheme == contract.SCHEME_TIMESTAMPED_HMAC:
        return _secret_key_timestamped(secret)
    raise ValueError(f"unknown signature scheme {scheme!r}")


def public_key(value: str) -> Ed25519PublicKey:
    """Return the ed25519 key of a `whpk_` public key; ValueError if unusable."""
    if not value.startswith(contract.PUBLIC_KEY_PREFIX):
        raise ValueError(f"does not start with {contract.PUBLIC_KEY_PREFIX}")
    try:
        raw = base64.b64decode(value.removeprefix(contract.PUBLIC_KEY_PREFIX), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"is not {contract.PUBLIC_KEY_PREFIX} followed by base64") from exc
    if len(raw) != contract.ED25519_PUBLIC_KEY_BYTES:
        raise ValueError(f"decodes to {len(raw)} bytes, not an ed25519 key's 32")
    return Ed25519PublicKey.from_public_bytes(raw)


def _hmac_sha256(key: bytes, *parts: bytes) -> bytes:
    return hmac.new(key, b".".join(parts), hashlib.sha256).digest()


# --- signing -------------------------------------------------------------------------


def sign(
    scheme: str,
    secrets: Sequence[str],
    body: bytes,
    *,
    webhook_id: str,
    timestamp: int | None = None,
    private_keys: Sequence[bytes] = (),
) -> dict[str, str]:
    """Return the headers that sign `body` under `scheme`, one entry per secret.

    `private_keys` (32-byte ed25519 seeds, Standard Webhooks only) add one `v1a,` entry each.
    """
    ts = int(time.time()) if timestamp is None else timestamp
    if scheme == contract.SCHEME_STANDARD:
        signed = (webhook_id.encode(), str(ts).encode(), body)
        entries = [
            contract.STANDARD_SIGNATURE_VERSION
            + ","
            + base64.b64encode(_hmac_sha256(_secret_key_standard(s), *signed)).decode()
            for s in secrets
        ] + [
            contract.STANDARD_ASYMMETRIC_VERSION
            + ","
            + base64.b64encode(
                Ed25519PrivateKey.from_private_bytes(seed).sign(b".".join(signed))
            ).decode()
            for seed in private_keys
        ]
        return {
            contract.STANDARD_ID_HEADER: webhook_id,
            contract.STANDARD_TIMESTAMP_HEADER: str(ts),
            contract.STANDARD_SIGNATURE_HEADER: " ".join(entries),
        }
    if scheme == contract.SCHEME_TIMESTAMPED_HMAC:
        parts = [f"t={ts}"] + [
            contract.TIMESTAMPED_SIGNATURE_VERSION
            + "="
            + _hmac_sha256(_secret_key_timestamped(s), str(ts).encode(), body).hex()
            for s in secrets
        ]
        if private_keys:
            raise ValueError("ed25519 keys sign only under the standard scheme")
        return {contract.TIMESTAMPED_SIGNATURE_HEADER: ",".join(parts)}
    raise ValueError(f"unknown signature scheme {scheme!r}")


# --- verification --------------------------------------------------------------------


def _header(headers: Mapping[str, str], name: str) -> str | None:
    # `headers` has lower-case keys (Verifier.verify normalises them).
    return headers.get(name.lower())


def _ascii(value: str, name: str, limit: int) -> str:
    if len(value) > limit:
        raise SignatureError(INVALID, f"{name} header is too long")
    if not value.isascii():
        raise SignatureError(INVALID, f"{name} header is not ASCII")
    return value.strip()


def _timestamp(raw: str, now: float, tolerance: int) -> int:
    # isdigit on an ASCII string accepts only 0-9; bound the length so int() stays cheap.
    if not raw or len(raw) > 12 or not raw.isdigit():
        raise SignatureError(INVALID, "timestamp is not a unix time in seconds")
    ts = int(raw)
    if abs(now - ts) > tolerance:
        raise SignatureError(OUT_OF_TOLERANCE, "timestamp is outside the allowed window")
    return ts


def _verify_standard(
    keys: Sequence[bytes],
    public: Sequence[Ed25519PublicKey],
    headers: Mapping[str, str],
    body: bytes,
    now: float,
    tolerance: int,
) -> Verified:
    msg_id = _header(headers, contract.STANDARD_ID_HEADER)
    msg_ts = _header(headers, contract.STANDARD_TIMESTAMP_HEADER)
    msg_sig = _header(headers, contract.STANDARD_SIGNATURE_HEADER)
    if msg_id is None or msg_ts is None or msg_sig is None:
        raise SignatureError(MISSING, "webhook-id, webhook-timestamp and webhook-signature needed")
    msg_id = _ascii(msg_id, contract.STANDARD_ID_HEADER, MAX_ID_HEADER_CHARS)
    msg_ts = _ascii(msg_ts, contract.STANDARD_TIMESTAMP_HEADER, 32)
    msg_sig = _ascii(msg_sig, contract.STANDARD_SIGNATURE_HEADER, MAX_SIGNATURE_HEADER_CHARS)
    if not msg_id:
        raise SignatureError(INVALID, "webhook-id is empty")
    if not msg_id.isprintable():
        # The id becomes a stored key; PostgreSQL cannot store a NUL in a text column.
        raise SignatureError(INVALID, "webhook-id has control characters")
    ts = _timestamp(msg_ts, now, tolerance)

    candidates: list[bytes] = []
    asymmetric: list[bytes] = []
    for entry in msg_sig.split()[:MAX_SIGNATURE_ENTRIES]:
        version, sep, value = entry.partition(",")
        if not sep:
            continue
        try:
            decoded = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            continue
        if version == contract.STANDARD_SIGNATURE_VERSION:
            candidates.append(decoded)
        elif (
            version == contract.STANDARD_ASYMMETRIC_VERSION
            and public
            and len(decoded) == contract.ED25519_SIGNATURE_BYTES
        ):
            asymmetric.append(decoded)
        # other versions are allowed by the spec and ignored
    if not candidates and not asymmetric:
        raise SignatureError(INVALID, "no v1 (or, with public keys, v1a) signature entry")

    signed = (msg_id.encode(), msg_ts.encode(), body)
    matched = _match_secret(keys, signed, candidates)
    if matched is None:
        matched = _match_public(public, signed, asymmetric)
        if matched is not None:
            matched += len(keys)
    if matched is None:
        raise SignatureError(INVALID, "no signature matches a configured secret or key")
    return Verified(secret_index=matched, timestamp=ts, webhook_id=msg_id)


def _verify_timestamped(
    keys: Sequence[bytes], headers: Mapping[str, str], body: bytes, now: float, tolerance: int
) -> Verified:
    header = _header(headers, contract.TIMESTAMPED_SIGNATURE_HEADER)
    if header is None:
        raise SignatureError(MISSING, f"{contract.TIMESTAMPED_SIGNATURE_HEADER} header needed")
    header = _ascii(header, contract.TIMESTAMPED_SIGNATURE_HEADER, MAX_SIGNATURE_HEADER_CHARS)
    ts_raw: str | None = None
    candidates: list[bytes] = []
    for item in header.split(",")[: MAX_SIGNATURE_ENTRIES + 1]:
        key, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if key == "t" and ts_raw is None:
            ts_raw = value
        elif key == contract.TIMESTAMPED_SIGNATURE_VERSION:
            try:
                candidates.append(bytes.fromhex(value))
            except ValueError:
                continue
    if ts_raw is None:
        raise SignatureError(INVALID, "signature header has no t= timestamp")
    ts = _timestamp(ts_raw, now, tolerance)
    if not candidates:
        raise SignatureError(INVALID, "no v1 signature entry")
    return _match(keys, (ts_raw.encode(), body), candidates, ts, None)


def _match(
    keys: Sequence[bytes],
    signed: tuple[bytes, ...],
    candidates: Sequence[bytes],
    ts: int,
    webhook_id: str | None,
) -> Verified:
    matched = _match_secret(keys, signed, candidates)
    if matched is None:
        raise SignatureError(INVALID, "no signature matches a configured secret")
    return Verified(secret_index=matched, timestamp=ts, webhook_id=webhook_id)


def _match_secret(
    keys: Sequence[bytes], signed: tuple[bytes, ...], candidates: Sequence[bytes]
) -> int | None:
    """Return the index of the secret whose HMAC is among the candidates, or None."""
    # Every key against every candidate, without stopping early on the first match, so the
    # time taken does not reveal which secret or entry matched.
    matched: int | None = None
    for index, key in enumerate(keys):
        expected = _hmac_sha256(key, *signed)
        for candidate in candidates:
            if hmac.compare_digest(expected, candidate) and matched is None:
                matched = index
    return matched


def _match_public(
    public: Sequence[Ed25519PublicKey], signed: tuple[bytes, ...], candidates: Sequence[bytes]
) -> int | None:
    """Return the index of the public key one candidate verifies under, or None.

    Nothing here is secret (the keys are public), so an early stop tells an attacker nothing.
    """
    content = b".".join(signed)
    for index, key in enumerate(public):
        for candidate in candidates:
            try:
                key.verify(candidate, content)
            except InvalidSignature:
                continue
            return index
    return None


class Verifier:
    """Verify deliveries under one scheme against every configured secret."""

    def __init__(
        self,
        scheme: str,
        secrets: Sequence[str],
        tolerance_seconds: int,
        public_keys: Sequence[str] = (),
    ) -> None:
        if scheme not in contract.SCHEMES:
            raise ValueError(f"unknown signature scheme {scheme!r}")
        if not secrets:
            raise ValueError("at least one signing secret is needed")
        if public_keys and scheme != contract.SCHEME_STANDARD:
            raise ValueError("public keys (v1a) are a Standard Webhooks scheme's")
        self.scheme = scheme
        self.tolerance = tolerance_seconds
        self._keys = [secret_key(scheme, s) for s in secrets]
        self._public = [public_key(k) for k in public_keys]

    def verify(self, headers: Mapping[str, str], body: bytes, now: float | None = None) -> Verified:
        """Return what matched, or raise SignatureError."""
        current = time.time() if now is None else now
        # HTTP header names are case-insensitive; one normalised copy serves every lookup.
        headers = {name.lower(): value for name, value in headers.items()}
        if self.scheme == contract.SCHEME_STANDARD:
            return _verify_standard(
                self._keys, self._public, headers, body, current, self.tolerance
            )
        return _verify_timestamped(self._keys, headers, body, current, self.tolerance)


def fingerprint(secret: str) -> str:
    """Return a short, non-reversible name for a secret, safe to store and log."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()[:12]
