"""The client refuses to sign any challenge that is not a fresh login for itself."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from client.errors import BadChallenge
from client.login import check_challenge, sign_challenge
from client.models import Challenge
from crypto import AUTH_CHALLENGE_TYPE, LiaisonKeys, canonical_json, verify_signature
from crypto.signing import RECEIPT_TYPE

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def _challenge(payload_type: str = AUTH_CHALLENGE_TYPE, raw: bytes | None = None,
               **changes: Any) -> Challenge:
    body: dict[str, Any] = {"v": 1, "kind": "cadena-login", "origin": "test.cadena/ledger",
                            "challenge": "ab" * 16, "liaison": "ana",
                            "nonce": base64.b64encode(bytes(32)).decode(),
                            "expires": "2026-11-22T08:01:00Z"}
    body.update(changes)
    payload = raw if raw is not None else canonical_json(body)
    return Challenge(challenge_id="ab" * 16, payload=base64.b64encode(payload).decode(),
                     payload_type=payload_type, expires_at=NOW + timedelta(minutes=1))


def test_good_challenge_is_signed_as_a_login_only() -> None:
    keys = LiaisonKeys.generate()
    challenge = _challenge()
    signed = sign_challenge(challenge, keys, "ana", NOW, origin="test.cadena/ledger")
    payload = base64.b64decode(challenge.payload)
    signature = base64.b64decode(signed.signature)
    assert signed.key_id == keys.public.key_id
    verify_signature(keys.public.signing, AUTH_CHALLENGE_TYPE, payload, signature)
    with pytest.raises(Exception, match="does not verify"):
        verify_signature(keys.public.signing, RECEIPT_TYPE, payload, signature)


@pytest.mark.parametrize(("challenge", "message"), [
    (_challenge(liaison="mallory"), "for 'mallory'"),
    (_challenge(kind="cadena-receipt"), "not a version 1 cadena-login"),
    (_challenge(v=2), "not a version 1"),
    (_challenge(extra="x"), "not a version 1"),
    (_challenge(challenge="cd" * 16), "differs from the one announced"),
    (_challenge(expires="2026-11-22T07:59:00Z"), "expired"),
    (_challenge(expires="2026-11-23T08:00:00Z"), "far too long"),
    (_challenge(expires="tomorrow"), "no RFC 3339"),
    (_challenge(origin="evil.example/ledger"), "origin"),
    (_challenge(payload_type=RECEIPT_TYPE), "not a login challenge"),
    (_challenge(raw=b'{"v": 1}'), "not canonical JSON"),
    (_challenge(raw=b"\xff"), "not canonical JSON"),
])
def test_bad_challenge_is_never_signed(challenge: Challenge, message: str) -> None:
    with pytest.raises(BadChallenge, match=message):
        check_challenge(challenge, "ana", NOW, origin="test.cadena/ledger")


def test_small_clock_lag_is_tolerated() -> None:
    challenge = _challenge(expires="2026-11-22T07:59:50Z")
    assert check_challenge(challenge, "ana", NOW) == base64.b64decode(challenge.payload)
