"""The cipher of data at rest: AES-256-GCM under a ring of keys, each sealed value naming its key.

A sealed value is MAGIC, the key id (4 bytes), a random 96-bit nonce, then the ciphertext
and its 16-byte tag. The key id is the start of the key's SHA-256 (under a label), so
nobody names keys by hand and any process can tell which key a value needs without trying
them all. AES-GCM rather than Fernet: Fernet is AES-CBC plus HMAC-SHA256 and base64 of the
whole token, about twice the stored size and several times the CPU for the receiver's few
KiB per delivery, and it has no associated data, which binds a value to its column here so
a value copied from one column into another does not open there.

MAGIC starts with 0xFF, a byte no UTF-8 text holds: a webhook body (JSON) stored in plain
text before keys were configured can never be mistaken for a sealed one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"\xffrh1"
KEY_BYTES = 32
KEY_ID_BYTES = 4
NONCE_BYTES = 12
TAG_BYTES = 16
HEADER_BYTES = len(MAGIC) + KEY_ID_BYTES + NONCE_BYTES
# Sealed text (for JSON columns): this prefix, the key id in hex, ':', base64 of the rest.
TEXT_PREFIX = "rh1:"


class SealError(ValueError):
    """A sealed value cannot be opened; the message names the key id, never a key."""


class UnknownKey(SealError):
    """The value was sealed under a key that is not configured."""

    def __init__(self, key_id: str) -> None:
        super().__init__(
            f"stored data is encrypted under key id {key_id}, which DATA_ENCRYPTION_KEYS "
            "does not hold; add that key back (the first key encrypts, every key decrypts)"
        )
        self.key_id = key_id


def key_id(key: bytes) -> str:
    """Return the key's id: 8 hex characters derived from the key, safe to print."""
    return hashlib.sha256(b"rivya-hooks data key id\x00" + key).digest()[:KEY_ID_BYTES].hex()


def generate_key() -> str:
    """Return a new random key as DATA_ENCRYPTION_KEYS takes it (base64 of 32 bytes)."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()


def is_sealed(value: bytes) -> bool:
    """Return True if `value` is a sealed value rather than plain bytes."""
    return value[: len(MAGIC)] == MAGIC


def sealed_key_id(value: bytes) -> str | None:
    """Return the id of the key `value` is sealed under, or None for plain bytes."""
    if not is_sealed(value):
        return None
    return value[len(MAGIC) : len(MAGIC) + KEY_ID_BYTES].hex()


def sealed_text_key_id(value: str) -> str | None:
    """Return the id of the key sealed text is under, or None for anything else."""
    if not value.startswith(TEXT_PREFIX):
        return None
    return value[len(TEXT_PREFIX) : len(TEXT_PREFIX) + 2 * KEY_ID_BYTES]


def text_pattern(kid: str) -> str:
    """Return the SQL LIKE pattern of a JSON column's text sealed under key `kid`."""
    return f'"{TEXT_PREFIX}{kid}:%'


class Keyring:
    """The configured keys: the first seals, any of them opens what it sealed."""

    def __init__(self, keys: Sequence[bytes] = ()) -> None:
        self._ciphers: dict[bytes, AESGCM] = {}
        for key in keys:
            if len(key) != KEY_BYTES:
                raise ValueError(f"a data key must be {KEY_BYTES} bytes")
            kid = bytes.fromhex(key_id(key))
            if kid in self._ciphers:
                # Two keys of one ring sharing an id: the same key twice (or a 1 in 4e9 clash).
                raise ValueError(f"two data keys share the id {kid.hex()}; keep one")
            self._ciphers[kid] = AESGCM(key)
        self._first = next(iter(self._ciphers), None)

    @property
    def enabled(self) -> bool:
        """Return True when there is a key to seal with."""
        return self._first is not None

    @property
    def ids(self) -> tuple[str, ...]:
        """Return the configured key ids, the sealing one first."""
        return tuple(kid.hex() for kid in self._ciphers)

    @property
    def sealing_id(self) -> str | None:
        """Return the id of the key new values are sealed under (None: none is)."""
        return None if self._first is None else self._first.hex()

    def seal(self, plain: bytes, aad: bytes) -> bytes:
        """Return `plain` sealed under the first key, bound to `aad` (where it is stored)."""
        if self._first is None:
            raise SealError("no data key is configured to encrypt with")
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self._first].encrypt(nonce, plain, aad)
        return MAGIC + self._first + nonce + sealed

    def open(self, value: bytes, aad: bytes) -> bytes:
        """Return the plain bytes of a sealed value (plain bytes are returned as they are)."""
        if not is_sealed(value):
            return value
        if len(value) < HEADER_BYTES + TAG_BYTES:
            raise SealError("a sealed value is cut short")
        kid = value[len(MAGIC) : len(MAGIC) + KEY_ID_BYTES]
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise UnknownKey(kid.hex())
        nonce = value[len(MAGIC) + KEY_ID_BYTES : HEADER_BYTES]
        try:
            return cipher.decrypt(nonce, value[HEADER_BYTES:], aad)
        except InvalidTag:
            raise SealError(
                f"a value sealed under key id {kid.hex()} fails authentication: it was changed, "
                "or moved from another column"
            ) from None

    def reseal(self, value: bytes, aad: bytes) -> bytes | None:
        """Return `value` sealed under the first key, or None when it already is."""
        if sealed_key_id(value) == self.sealing_id:
            return None
        return self.seal(self.open(value, aad), aad)

    def seal_text(self, plain: bytes, aad: bytes) -> str:
        """Return `plain` sealed as text (TEXT_PREFIX, key id, ':', base64) for a JSON column."""
        sealed = self.seal(plain, aad)
        kid = sealed[len(MAGIC) : len(MAGIC) + KEY_ID_BYTES].hex()
        rest = base64.b64encode(sealed[len(MAGIC) + KEY_ID_BYTES :]).decode()
        return f"{TEXT_PREFIX}{kid}:{rest}"

    def open_text(self, value: str, aad: bytes) -> bytes:
        """Return the plain bytes of sealed text (see seal_text)."""
        kid = sealed_text_key_id(value)
        if kid is None:
            raise SealError("the value is not sealed text")
        try:
            rest = base64.b64decode(value[len(TEXT_PREFIX) + 2 * KEY_ID_BYTES + 1 :], validate=True)
            kid_bytes = bytes.fromhex(kid)
        except (binascii.Error, ValueError):
            raise SealError("sealed text is not well formed") from None
        return self.open(MAGIC + kid_bytes + rest, aad)
