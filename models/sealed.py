"""Column types that seal on the way in and open on the way out, under the engine's keyring.

Each engine carries the keyring its settings name (use_keyring), kept on the engine's own
dialect object: a type's bind and result processors are handed that dialect on every call,
so the raw-cursor path of the receiver (InboxWriter binds through the columns' own
processors) seals exactly as the ORM does, and two engines with different keys (tests, the
`keys rotate` command beside a running service) never share one. An engine without a
keyring stores plain values, as before encryption existed, and opens only plain ones.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import JSON, Engine, LargeBinary, TypeDecorator
from sqlalchemy.engine import Dialect

from models.encryption import Keyring, sealed_text_key_id

_ATTRIBUTE = "rivyahooks_keyring"
_NO_KEYS = Keyring()


def use_keyring(engine: Engine, keyring: Keyring) -> Engine:
    """Make the engine seal and open its sealed columns with `keyring`; return the engine."""
    setattr(engine.dialect, _ATTRIBUTE, keyring)
    return engine


def keyring_of(dialect: Dialect) -> Keyring:
    """Return the keyring of the engine this dialect belongs to (an empty one if none)."""
    keyring: Keyring = getattr(dialect, _ATTRIBUTE, _NO_KEYS)
    return keyring


class SealedBytes(TypeDecorator[bytes]):
    """Bytes sealed under the engine's first key (plain when it has none)."""

    impl = LargeBinary
    cache_ok = True

    def __init__(self, aad: str) -> None:
        super().__init__()
        # Where the value lives: a sealed value opens only in the column it was sealed for.
        self.aad = aad.encode()

    def process_bind_param(self, value: bytes | None, dialect: Dialect) -> bytes | None:
        keyring = keyring_of(dialect)
        if value is None or not keyring.enabled:
            return value
        return keyring.seal(bytes(value), self.aad)

    def process_result_value(self, value: Any, dialect: Dialect) -> bytes | None:
        if value is None:
            return None
        return keyring_of(dialect).open(bytes(value), self.aad)


class SealedJSON(TypeDecorator[Any]):
    """A JSON document stored as one sealed JSON string (a plain document when no key is set).

    Still a JSON column, so enabling encryption changes no schema and rows stored before it
    read as they always did.
    """

    impl = JSON
    cache_ok = True

    def __init__(self, aad: str) -> None:
        super().__init__()
        self.aad = aad.encode()

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        keyring = keyring_of(dialect)
        if value is None or not keyring.enabled:
            return value
        return keyring.seal_text(json.dumps(value, separators=(",", ":")).encode(), self.aad)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if isinstance(value, str) and sealed_text_key_id(value) is not None:
            return json.loads(keyring_of(dialect).open_text(value, self.aad))
        return value
