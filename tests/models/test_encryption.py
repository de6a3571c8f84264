"""The cipher: a sealed value opens only with its key, in its column, unchanged."""

from __future__ import annotations

import os

import pytest

from models.encryption import (
    MAGIC,
    Keyring,
    SealError,
    UnknownKey,
    is_sealed,
    key_id,
    sealed_key_id,
    sealed_text_key_id,
)

OLD, NEW = os.urandom(32), os.urandom(32)
AAD = b"webhook_events.body"
PROMPT = b'{"prompt": "a lighthouse at dusk, oil on canvas"}'


def test_a_sealed_value_opens_to_the_same_bytes_and_hides_them() -> None:
    ring = Keyring([NEW])
    sealed = ring.seal(PROMPT, AAD)
    assert PROMPT not in sealed
    assert b"lighthouse" not in sealed
    assert sealed.startswith(MAGIC)
    assert is_sealed(sealed)
    assert ring.open(sealed, AAD) == PROMPT
    # A random nonce each time: equal bodies do not give equal ciphertexts.
    assert ring.seal(PROMPT, AAD) != sealed


def test_the_key_id_in_the_value_routes_it_to_its_key() -> None:
    sealed_by_old = Keyring([OLD]).seal(PROMPT, AAD)
    ring = Keyring([NEW, OLD])
    assert sealed_key_id(sealed_by_old) == key_id(OLD)
    assert ring.open(sealed_by_old, AAD) == PROMPT
    # The first key seals.
    assert sealed_key_id(ring.seal(PROMPT, AAD)) == key_id(NEW) == ring.sealing_id
    assert ring.ids == (key_id(NEW), key_id(OLD))


def test_a_value_under_a_key_not_configured_names_that_key_id() -> None:
    sealed = Keyring([OLD]).seal(PROMPT, AAD)
    with pytest.raises(UnknownKey) as caught:
        Keyring([NEW]).open(sealed, AAD)
    assert caught.value.key_id == key_id(OLD)
    assert key_id(OLD) in str(caught.value)
    with pytest.raises(UnknownKey):
        Keyring().open(sealed, AAD)


def test_a_wrong_key_with_the_same_id_fails_authentication() -> None:
    # A forged id prefix pointing at the configured key: the tag, not the id, decides.
    sealed = bytearray(Keyring([OLD]).seal(PROMPT, AAD))
    sealed[len(MAGIC) : len(MAGIC) + 4] = bytes.fromhex(key_id(NEW))
    with pytest.raises(SealError, match="fails authentication"):
        Keyring([NEW]).open(bytes(sealed), AAD)


@pytest.mark.parametrize("position", [-1, -20, len(MAGIC) + 4, len(MAGIC) + 4 + 12])
def test_a_tampered_ciphertext_fails_to_open(position: int) -> None:
    sealed = bytearray(Keyring([NEW]).seal(PROMPT, AAD))
    sealed[position] ^= 0x01
    with pytest.raises(SealError, match="fails authentication"):
        Keyring([NEW]).open(bytes(sealed), AAD)


def test_a_cut_short_value_fails_to_open() -> None:
    sealed = Keyring([NEW]).seal(PROMPT, AAD)
    with pytest.raises(SealError):
        Keyring([NEW]).open(sealed[:30], AAD)


def test_a_value_moved_to_another_column_does_not_open() -> None:
    sealed = Keyring([NEW]).seal(PROMPT, AAD)
    with pytest.raises(SealError, match="fails authentication"):
        Keyring([NEW]).open(sealed, b"console_secrets.value")


def test_plain_bytes_stored_before_encryption_read_as_they_are() -> None:
    assert Keyring([NEW]).open(PROMPT, AAD) == PROMPT
    assert Keyring().open(PROMPT, AAD) == PROMPT
    assert sealed_key_id(PROMPT) is None


def test_sealed_text_for_json_columns_round_trips_and_names_its_key() -> None:
    ring = Keyring([NEW, OLD])
    text = ring.seal_text(PROMPT, b"webhook_events.headers")
    assert sealed_text_key_id(text) == key_id(NEW)
    assert "lighthouse" not in text
    assert ring.open_text(text, b"webhook_events.headers") == PROMPT
    with pytest.raises(UnknownKey):
        Keyring([OLD]).open_text(text, b"webhook_events.headers")


def test_reseal_moves_a_value_to_the_first_key_once() -> None:
    ring = Keyring([NEW, OLD])
    old = Keyring([OLD]).seal(PROMPT, AAD)
    moved = ring.reseal(old, AAD)
    assert moved is not None
    assert sealed_key_id(moved) == key_id(NEW)
    assert ring.reseal(moved, AAD) is None
    assert ring.open(moved, AAD) == PROMPT
    plain = ring.reseal(PROMPT, AAD)
    assert plain is not None
    assert ring.open(plain, AAD) == PROMPT


def test_a_ring_refuses_keys_of_the_wrong_size_and_sealing_without_a_key() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Keyring([b"short"])
    with pytest.raises(ValueError, match="share the id"):
        Keyring([NEW, NEW])
    with pytest.raises(SealError, match="no data key"):
        Keyring().seal(PROMPT, AAD)
    assert not Keyring().enabled
    assert Keyring().sealing_id is None
