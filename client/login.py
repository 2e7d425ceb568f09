"""The client's half of the challenge–response login: check a challenge, then sign it.

The server sends the base64 of canonical JSON bytes::

    {"challenge": <id>, "expires": "YYYY-MM-DDTHH:MM:SSZ", "kind": "cadena-login",
     "liaison": <liaison id>, "nonce": <b64>, "origin": <ledger origin>, "v": 1}

Before the private key touches them, :func:`check_challenge` makes sure the
bytes are exactly such a login challenge, for this liaison, with the same id
the server named, not expired and not valid for long. The signature is then
Ed25519 over DSSE PAE(``AUTH_CHALLENGE_TYPE``, payload), so it can never be
read as a packet header, a receipt or a share.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from client.errors import BadChallenge
from client.models import Challenge
from crypto import AUTH_CHALLENGE_TYPE, CryptoError, KeyHolder, parse_canonical

LOGIN_KIND = "cadena-login"
CLOCK_SKEW = timedelta(seconds=30)
"""How far our clock may lag the server's before we call a fresh challenge expired."""
MAX_LIFETIME = timedelta(hours=1)
"""A challenge valid for longer than this is refused (the server issues one-minute ones)."""
_FIELDS = {"v", "kind", "origin", "challenge", "liaison", "nonce", "expires"}


@dataclass(frozen=True)
class SignedChallenge:
    """What ``POST /v1/auth/token`` takes: the challenge id, our key id, the signature."""

    challenge_id: str
    key_id: str
    signature: str

    def to_json(self) -> dict[str, str]:
        """The request body."""
        return {"challenge_id": self.challenge_id, "key_id": self.key_id,
                "signature": self.signature}


def _payload(challenge: Challenge) -> tuple[bytes, dict[str, Any]]:
    try:
        raw = base64.b64decode(challenge.payload.encode("ascii"), validate=True)
        return raw, parse_canonical(raw, max_size=4096)
    except (binascii.Error, UnicodeEncodeError, CryptoError) as exc:
        raise BadChallenge(f"the challenge is not canonical JSON: {exc}") from exc


def _expiry(text: Any) -> datetime:
    if not isinstance(text, str) or not text.endswith("Z"):
        raise BadChallenge("the challenge has no RFC 3339 UTC expiry")
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise BadChallenge("the challenge expiry is not a valid time") from exc


def check_challenge(challenge: Challenge, liaison_id: str, now: datetime,
                    origin: str | None = None) -> bytes:
    """Return the bytes to sign, or raise :class:`BadChallenge` if they must not be signed.

    ``origin``, when given (the pinned ledger's origin), must match too.
    """
    if challenge.payload_type != AUTH_CHALLENGE_TYPE:
        raise BadChallenge(f"payload type {challenge.payload_type!r} is not a login challenge")
    raw, body = _payload(challenge)
    if set(body) != _FIELDS or body["v"] != 1 or body["kind"] != LOGIN_KIND:
        raise BadChallenge("the payload is not a version 1 cadena-login challenge")
    if body["liaison"] != liaison_id:
        raise BadChallenge(f"the challenge is for {body['liaison']!r}, not {liaison_id!r}")
    if body["challenge"] != challenge.challenge_id:
        raise BadChallenge("the challenge id in the payload differs from the one announced")
    if origin is not None and body["origin"] != origin:
        raise BadChallenge(f"the challenge is for origin {body['origin']!r}, not {origin!r}")
    expires = _expiry(body["expires"])
    if expires <= now - CLOCK_SKEW:
        raise BadChallenge(f"the challenge expired at {body['expires']}")
    if expires > now + MAX_LIFETIME:
        raise BadChallenge(f"the challenge is valid until {body['expires']}, far too long")
    return raw


def sign_challenge(challenge: Challenge, keys: KeyHolder, liaison_id: str, now: datetime,
                   *, origin: str | None = None) -> SignedChallenge:
    """Check ``challenge`` (see :func:`check_challenge`) and sign it with ``keys``."""
    payload = check_challenge(challenge, liaison_id, now, origin)
    signature = keys.sign(AUTH_CHALLENGE_TYPE, payload)
    return SignedChallenge(challenge.challenge_id, keys.public.key_id,
                           base64.b64encode(signature).decode("ascii"))
