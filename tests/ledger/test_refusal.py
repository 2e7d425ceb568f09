"""A refusal's private detail is bound to its entry by SHA-256(salt || UTF-8(detail))."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger import (
    DETAIL_SALT_BYTES,
    Actor,
    Entry,
    EntryDraft,
    RefusalDetailError,
    detail_digest,
    encode_entry,
    parse_entry,
    verify_refusal_detail,
)
from ledger.format.entry import Outcome

# The worked example of docs/ledger-formats.md ("Refusal details").
SALT = bytes(range(32))
DETAIL = "recipient carol: clearance CONFIDENTIAL is below SECRET"
DIGEST = "097cddec87613ec5cbb53d18ce1199f9d630479c93b13f177bb61afb88a5497b"


def _refusal(digest: str | None = DIGEST, outcome: Outcome = "denied") -> Entry:
    draft = EntryDraft(
        time=datetime(2026, 12, 6, 18, 0, tzinfo=UTC), actor=Actor(liaison="bob", key="k-bob"),
        action="packet.share", subject={"type": "packet", "id": "p1"}, outcome=outcome,
        reason="recipient-not-eligible" if outcome == "denied" else None,
        details={"detail_digest": digest} if digest else {})
    return parse_entry(encode_entry(draft, 0, bytes(32)))


def test_documented_example_digest() -> None:
    assert detail_digest(SALT, DETAIL) == DIGEST
    assert DIGEST == hashlib.sha256(SALT + DETAIL.encode()).hexdigest()


def test_matching_detail_verifies() -> None:
    verify_refusal_detail(_refusal(), SALT, DETAIL)


@given(salt=st.binary(min_size=32, max_size=32), detail=st.text(), other=st.text())
def test_a_changed_detail_fails(salt: bytes, detail: str, other: str) -> None:
    entry = _refusal(detail_digest(salt, detail))
    verify_refusal_detail(entry, salt, detail)
    if other != detail:
        with pytest.raises(RefusalDetailError):
            verify_refusal_detail(entry, salt, other)


@given(byte=st.integers(0, 31), bit=st.integers(0, 7))
def test_a_flipped_salt_bit_fails(byte: int, bit: int) -> None:
    salt = bytearray(SALT)
    salt[byte] ^= 1 << bit
    with pytest.raises(RefusalDetailError, match="does not match"):
        verify_refusal_detail(_refusal(), bytes(salt), DETAIL)


def test_moving_bytes_between_salt_and_detail_fails() -> None:
    # salt || detail as bytes is the same; the fixed salt length refuses the split.
    with pytest.raises(RefusalDetailError, match="33 bytes"):
        verify_refusal_detail(_refusal(), SALT + DETAIL[:1].encode(), DETAIL[1:])
    with pytest.raises(RefusalDetailError, match="31 bytes"):
        verify_refusal_detail(_refusal(), SALT[:-1], chr(SALT[-1]) + DETAIL)


def test_only_a_refusal_carrying_a_digest_has_a_detail() -> None:
    with pytest.raises(RefusalDetailError, match="not a refusal"):
        verify_refusal_detail(_refusal(outcome="granted"), SALT, DETAIL)
    with pytest.raises(RefusalDetailError, match="carries no detail_digest"):
        verify_refusal_detail(_refusal(digest=None), SALT, DETAIL)


def test_a_detail_that_is_not_unicode_text_fails_closed() -> None:
    with pytest.raises(RefusalDetailError, match="not valid Unicode"):
        verify_refusal_detail(_refusal(), SALT, "\ud800")
    assert len(SALT) == DETAIL_SALT_BYTES
