"""The client's half of a key rotation: check the challenge, then sign and prove.

``POST /v1/liaisons/me/keys/challenge`` names the liaison, the current key
set, a nonce and the server's ephemeral X25519 key. Before any private key
touches it, :func:`rotation_statement` makes sure the challenge is a rotation
challenge for this liaison, this current key set and (when pinned) this
ledger origin, and not expired. :func:`rotation_body` then builds the
statement and its three proofs (``crypto.rotation``, docs/protocol.md §9):
the current key's signature, the new signing key's signature and the X25519
proof of the new encryption key. Only signatures and a MAC leave this
process; the private keys never do.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime, timedelta

from client.errors import BadChallenge
from client.models import RotationChallenge
from crypto import KEY_ROTATION_TYPE, CryptoError, LiaisonKeys, RotationStatement, sign_rotation

CLOCK_SKEW = timedelta(seconds=30)
"""How far our clock may lag the server's before we call a fresh challenge expired."""


def _decode(text: str, name: str) -> bytes:
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise BadChallenge(f"the challenge's {name} is not base64") from exc
    if len(data) != 32:
        raise BadChallenge(f"the challenge's {name} is not 32 bytes")
    return data


def rotation_statement(challenge: RotationChallenge, liaison_id: str, current: LiaisonKeys,
                       new: LiaisonKeys, *, now: datetime,
                       origin: str | None = None) -> RotationStatement:
    """The statement to sign for ``challenge``, or :class:`BadChallenge` if it must not be.

    ``origin``, when given (the pinned ledger's origin), must be the challenge's.
    """
    if challenge.payload_type != KEY_ROTATION_TYPE:
        raise BadChallenge(f"payload type {challenge.payload_type!r} is not a key rotation")
    if challenge.liaison_id != liaison_id:
        raise BadChallenge(f"the challenge is for {challenge.liaison_id!r}, not {liaison_id!r}")
    if challenge.key_id != current.public.key_id:
        raise BadChallenge("the challenge is for another current key set")
    if origin is not None and challenge.origin != origin:
        raise BadChallenge(f"the challenge is for origin {challenge.origin!r}, not {origin!r}")
    if challenge.expires_at <= now - CLOCK_SKEW:
        raise BadChallenge("the rotation challenge has expired")
    try:
        return RotationStatement(
            origin=challenge.origin, liaison=liaison_id, challenge=challenge.challenge_id,
            nonce=_decode(challenge.nonce, "nonce"),
            server_box=_decode(challenge.server_box, "server_box"),
            old_key_id=current.public.key_id, new_keys=new.public)
    except CryptoError as exc:
        raise BadChallenge(f"the challenge cannot be signed: {exc}") from exc


def rotation_body(challenge: RotationChallenge, liaison_id: str, current: LiaisonKeys,
                  new: LiaisonKeys, *, now: datetime,
                  origin: str | None = None) -> dict[str, str]:
    """The ``POST /v1/liaisons/me/keys`` body: new public keys, statement and three proofs."""
    statement = rotation_statement(challenge, liaison_id, current, new, now=now, origin=origin)
    try:
        signed = sign_rotation(statement, current, new)
    except CryptoError as exc:  # a low-order server key: no X25519 proof can be made
        raise BadChallenge(f"the challenge cannot be signed: {exc}") from exc

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode("ascii")

    return {
        "signing_public": b64(new.public.signing),
        "encryption_public": b64(new.public.encryption),
        "challenge_id": challenge.challenge_id,
        "statement": b64(signed.statement),
        "signature": b64(signed.signature),
        "new_key_signature": b64(signed.new_key_signature),
        "box_proof": b64(signed.box_proof),
    }
