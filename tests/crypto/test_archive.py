"""The operator's encrypted archive (crypto.archive): it round-trips, and nothing else opens it."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crypto import (
    CryptoError,
    LiaisonKeys,
    NotARecipient,
    decrypt_archive,
    encrypt_archive,
    is_encrypted_archive,
)

OPERATOR = LiaisonKeys.generate()
STRANGER = LiaisonKeys.generate()


def _sealed(data: bytes, chunk_size: int = 64) -> bytes:
    out = io.BytesIO()
    encrypt_archive(io.BytesIO(data), out, OPERATOR.public, chunk_size=chunk_size)
    return out.getvalue()


def _header_end(sealed: bytes) -> int:
    """Where the ciphertext starts: after the magic line and the header line."""
    return sealed.index(b"\n", sealed.index(b"\n") + 1) + 1


def _open(sealed: bytes, identity: LiaisonKeys = OPERATOR) -> bytes:
    out = io.BytesIO()
    decrypt_archive(io.BytesIO(sealed), out, identity)
    return out.getvalue()


@given(st.binary(max_size=1000))
def test_round_trip_and_no_plaintext(data: bytes) -> None:
    sealed = _sealed(data)
    assert is_encrypted_archive(sealed)
    assert _open(sealed) == data
    body = sealed[_header_end(sealed):]
    if len(data) >= 16:
        assert data not in body


def test_another_key_does_not_open_it() -> None:
    sealed = _sealed(b"x" * 500)
    with pytest.raises(NotARecipient):
        _open(sealed, STRANGER)


@given(st.binary(min_size=1, max_size=600), st.data())
def test_any_flipped_byte_or_truncation_fails(data: bytes, draw: st.DataObject) -> None:
    sealed = _sealed(data)
    header_end = _header_end(sealed)
    position = draw.draw(st.integers(header_end, len(sealed) - 1))
    flipped = bytearray(sealed)
    flipped[position] ^= 1 << draw.draw(st.integers(0, 7))
    with pytest.raises(CryptoError):
        _open(bytes(flipped))
    cut = draw.draw(st.integers(header_end, len(sealed) - 1))
    with pytest.raises(CryptoError):
        _open(sealed[:cut])


def test_a_wrapped_key_moved_to_another_archive_does_not_open() -> None:
    first, second = _sealed(b"a" * 200), _sealed(b"b" * 200)
    head_first = first[:_header_end(first)]
    body_second = second[_header_end(second):]
    with pytest.raises(CryptoError):
        _open(head_first + body_second)
