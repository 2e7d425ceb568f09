"""Liaison key sets: generation, key ids, fingerprints and passphrase-protected storage."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crypto import (
    BadPassphrase,
    InvalidArgument,
    KeyFormatError,
    LiaisonKeys,
    LiaisonPublicKeys,
    PlaintextKeyRefused,
    canonical_json,
    load_keys,
    save_keys,
)
from crypto.keyfile import MEMLIMIT_MIN, OPSLIMIT_MIN

KEYS = LiaisonKeys.from_secret_bytes(bytes(range(64)))


@given(st.text(min_size=1, max_size=20))
def test_passphrase_round_trip(passphrase: str) -> None:
    stored = save_keys(KEYS, passphrase, opslimit=OPSLIMIT_MIN, memlimit=MEMLIMIT_MIN)
    assert load_keys(stored, passphrase).secret_bytes() == KEYS.secret_bytes()


def test_wrong_passphrase_fails() -> None:
    stored = save_keys(KEYS, "correct horse", opslimit=OPSLIMIT_MIN, memlimit=MEMLIMIT_MIN)
    with pytest.raises(BadPassphrase):
        load_keys(stored, "battery staple")
    with pytest.raises(BadPassphrase):
        load_keys(stored, None)


@pytest.mark.parametrize("field", ["public", "kdf"])
def test_altering_authenticated_fields_is_detected(field: str) -> None:
    obj = json.loads(save_keys(KEYS, "pw", opslimit=OPSLIMIT_MIN, memlimit=MEMLIMIT_MIN))
    if field == "kdf":
        obj["kdf"]["opslimit"] += 1
    else:
        obj["public"] = LiaisonKeys.generate().public.to_json()
    with pytest.raises(BadPassphrase):
        load_keys(canonical_json(obj), "pw")


def test_plaintext_storage_needs_the_explicit_flag() -> None:
    with pytest.raises(InvalidArgument):
        save_keys(KEYS, None)
    stored = save_keys(KEYS, None, allow_plaintext=True)
    with pytest.raises(PlaintextKeyRefused):
        load_keys(stored, None)
    assert load_keys(stored, None, allow_plaintext=True).public == KEYS.public


def test_empty_passphrase_is_refused() -> None:
    with pytest.raises(InvalidArgument):
        save_keys(KEYS, "", opslimit=OPSLIMIT_MIN, memlimit=MEMLIMIT_MIN)


@pytest.mark.parametrize("garbage", [b"", b"{}", b"[1]", b'{"v":2}', b"\xff"])
def test_garbage_key_files_are_a_format_error(garbage: bytes) -> None:
    with pytest.raises(KeyFormatError):
        load_keys(garbage, "pw")


def test_repr_of_secrets_is_redacted() -> None:
    secret_hex = KEYS.secret_bytes().hex()
    for text in (repr(KEYS), str(KEYS)):
        assert "redacted" in text
        assert secret_hex[:16] not in text
        assert secret_hex[64:80] not in text


def test_public_key_set_round_trips_and_names_itself() -> None:
    public = KEYS.public
    assert LiaisonPublicKeys.from_bytes(public.to_bytes()) == public
    assert len(public.key_id) == 32
    assert public.key_id != LiaisonKeys.generate().public.key_id


def test_fingerprint_is_six_groups_of_five_digits() -> None:
    groups = KEYS.public.fingerprint.split(" ")
    assert [len(g) for g in groups] == [5] * 6
    assert all(g.isdigit() for g in groups)
    assert KEYS.public.fingerprint != LiaisonKeys.generate().public.fingerprint
