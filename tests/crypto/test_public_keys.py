"""Public keys a server takes from outside: no all-zero, small-order or non-canonical point.

The vectors (``tests/vectors/crypto/small-order-keys.json``) are libsodium's
small-order blacklists for X25519 and Ed25519; libsodium itself is asked to
confirm each one, so the list cannot drift from what the library refuses.
"""

from __future__ import annotations

import json
from pathlib import Path

import nacl.bindings
import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl.public import PrivateKey
from nacl.signing import SigningKey

from crypto import (
    InvalidArgument,
    InvalidPublicKey,
    LiaisonKeys,
    check_ed25519_public,
    check_public_keys,
    check_x25519_public,
)

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "crypto"
                      / "small-order-keys.json").read_text(encoding="utf-8"))
P = 2**255 - 19


def _keys(curve: str) -> list[bytes]:
    return [bytes.fromhex(v["key"]) for v in VECTORS[curve]]


def _with_top_bit(key: bytes) -> bytes:
    return key[:31] + bytes([key[31] | 0x80])


X25519_BAD = _keys("x25519") + [_with_top_bit(k) for k in _keys("x25519")]
ED25519_BAD = _keys("ed25519") + [_with_top_bit(k) for k in _keys("ed25519")]


def test_the_vectors_are_the_seven_libsodium_lists() -> None:
    assert len(_keys("x25519")) == len(_keys("ed25519")) == 7


@pytest.mark.parametrize("key", _keys("x25519"), ids=lambda k: k.hex()[:8])
def test_libsodium_agrees_each_x25519_vector_has_small_order(key: bytes) -> None:
    with pytest.raises(nacl.exceptions.RuntimeError):
        nacl.bindings.crypto_scalarmult(bytes(PrivateKey.generate()), key)


@pytest.mark.parametrize("key", ED25519_BAD, ids=lambda k: k.hex()[:8] + k.hex()[-2:])
def test_libsodium_agrees_each_ed25519_vector_is_invalid(key: bytes) -> None:
    assert not nacl.bindings.crypto_core_ed25519_is_valid_point(key)


def test_all_zero_x25519_key_is_refused() -> None:
    with pytest.raises(InvalidPublicKey, match="small order"):
        check_x25519_public(bytes(32))


@pytest.mark.parametrize("key", X25519_BAD, ids=lambda k: k.hex()[:8] + k.hex()[-2:])
def test_small_order_x25519_keys_are_refused(key: bytes) -> None:
    with pytest.raises(InvalidPublicKey):
        check_x25519_public(key)


@pytest.mark.parametrize("key", ED25519_BAD, ids=lambda k: k.hex()[:8] + k.hex()[-2:])
def test_small_order_ed25519_keys_are_refused(key: bytes) -> None:
    with pytest.raises(InvalidPublicKey):
        check_ed25519_public(key)


@given(st.integers(min_value=P, max_value=2**256 - 1))
def test_non_canonical_x25519_encodings_are_refused(u: int) -> None:
    with pytest.raises(InvalidPublicKey, match="canonical"):
        check_x25519_public(u.to_bytes(32, "little"))


@pytest.mark.parametrize("length", [0, 31, 33])
def test_keys_of_the_wrong_length_are_refused(length: int) -> None:
    with pytest.raises(InvalidPublicKey):
        check_x25519_public(bytes(length))
    with pytest.raises(InvalidPublicKey):
        check_ed25519_public(bytes(length))


def test_invalid_public_key_is_an_invalid_argument() -> None:
    assert issubclass(InvalidPublicKey, InvalidArgument)


@given(st.binary(min_size=64, max_size=64))
def test_random_valid_key_sets_pass(secret: bytes) -> None:
    keys = LiaisonKeys.from_secret_bytes(secret).public
    assert check_public_keys(keys) is keys


@given(st.binary(min_size=32, max_size=32))
def test_random_valid_keys_pass_each_check(seed: bytes) -> None:
    assert check_ed25519_public(bytes(SigningKey(seed).verify_key)) == \
        bytes(SigningKey(seed).verify_key)
    public = bytes(PrivateKey(seed).public_key)
    assert check_x25519_public(public) == public
