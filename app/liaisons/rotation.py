"""The rules of key rotation: a one-time challenge, then a statement and its three proofs.

A bearer token alone never changes identity (DESIGN.md, Authentication): the
caller first gets a challenge bound to them and to their token's key set,
then sends a rotation statement (``crypto.rotation``, docs/protocol.md §9)
signed by that current key, with proofs of possession of both new keys.
Every failure is a refusal of an authenticated actor, recorded in the ledger
by the session dependency; nothing changes.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from app.auth.service import Principal
from app.identity import repository as repo
from app.ledger import AccessDenied, Reason, deny, draft, now, record
from app.models.rotation import KeyRotationChallenge
from crypto import (
    BadKeyProof,
    BadSignature,
    ChallengeMismatch,
    CryptoError,
    FormatError,
    LiaisonPublicKeys,
    RotationChallenge,
    RotationStatement,
    SignedRotation,
    b64decode,
    b64encode,
    server_box_secret,
    verify_rotation,
)

ROTATE = "key.rotate"
CHALLENGE = "key.rotate_challenge"


class RotationRefused(AccessDenied):
    """A key rotation without valid proofs (or for a challenge that is not usable)."""

    status, code, title = 403, "rotation-refused", "Key rotation refused"


@dataclass(frozen=True)
class IssuedRotationChallenge:
    """A rotation challenge as handed to the client (the ephemeral secret stays here)."""

    challenge: RotationChallenge
    key_id: str
    expires_at: datetime


@dataclass(frozen=True)
class RotationRequest:
    """What the client sent besides the new public keys, base64 as sent (``None``: left out)."""

    challenge_id: str | None
    statement: str | None
    signature: str | None
    new_key_signature: str | None
    box_proof: str | None

    def signed(self) -> SignedRotation | None:
        """The decoded statement and proofs; ``None`` if any is missing.

        Raises :class:`crypto.errors.FormatError` for text that is not
        canonical base64.
        """
        parts = (self.statement, self.signature, self.new_key_signature, self.box_proof)
        names = ("statement", "signature", "new_key_signature", "box_proof")
        if any(part is None for part in parts):
            return None
        decoded = [b64decode(part or "", name) for part, name in zip(parts, names, strict=True)]
        return SignedRotation(*decoded)


def _subject(by: Principal) -> dict[str, str]:
    return {"type": "liaison", "id": by.liaison_id}


def _refuse(by: Principal, reason: Reason, detail: str) -> AccessDenied:
    # The detail concerns the caller alone: it goes in the problem body, the code
    # in the ledger.
    return deny(RotationRefused, f"key rotation refused: {detail}", by.actor, ROTATE,
                _subject(by), reason)


def issue_challenge(session: Session, by: Principal, origin: str,
                    ttl: int) -> IssuedRotationChallenge:
    """A one-time rotation challenge for the caller's current key set; logged.

    The caller's earlier challenges, and everyone's expired ones, are deleted.
    """
    moment = now()
    repo.purge_rotation_challenges(session, by.liaison_id, moment)
    row = KeyRotationChallenge(
        id=secrets.token_hex(16), liaison_id=by.liaison_id, key_id=by.key_id,
        nonce=secrets.token_bytes(32), server_box_secret=server_box_secret(),
        expires_at=(moment + timedelta(seconds=ttl)).replace(microsecond=0))
    session.add(row)
    record(session, draft(by.actor, CHALLENGE, _subject(by), details={"challenge": row.id}))
    return IssuedRotationChallenge(_context(row, origin), row.key_id, row.expires_at)


def _context(row: KeyRotationChallenge, origin: str) -> RotationChallenge:
    return RotationChallenge(origin=origin, liaison=row.liaison_id, challenge=row.id,
                             nonce=row.nonce, server_box_secret=row.server_box_secret)


def _usable_challenge(session: Session, by: Principal,
                      challenge_id: str) -> KeyRotationChallenge:
    row = repo.rotation_challenge(session, challenge_id)
    if row is None:
        raise _refuse(by, Reason.ROTATION_CHALLENGE_UNKNOWN, "unknown or used rotation challenge")
    if row.liaison_id != by.liaison_id:
        raise _refuse(by, Reason.ROTATION_CHALLENGE_NOT_YOURS,
                      "rotation challenge of another liaison")
    if row.key_id != by.key_id:
        raise _refuse(by, Reason.ROTATION_CHALLENGE_NOT_YOURS,
                      "rotation challenge of another key set")
    if row.expires_at <= now():
        raise _refuse(by, Reason.ROTATION_CHALLENGE_EXPIRED, "rotation challenge expired")
    return row


def _current_keys(session: Session, by: Principal) -> LiaisonPublicKeys:
    key = repo.usable_key(session, by.key_id)
    if key is None or key.liaison_id != by.liaison_id:
        raise _refuse(by, Reason.KEY_NOT_CURRENT, "current key not usable")
    return LiaisonPublicKeys(signing=key.signing_public, encryption=key.encryption_public)


def _verified(by: Principal, signed: SignedRotation, current: LiaisonPublicKeys,
              challenge: RotationChallenge) -> RotationStatement:
    try:
        return verify_rotation(signed, current, challenge)
    except BadSignature:
        raise _refuse(by, Reason.NOT_SIGNED_BY_CURRENT_KEY,
                      "not signed by the current key") from None
    except FormatError:
        raise _refuse(by, Reason.ROTATION_MALFORMED, "malformed rotation statement") from None
    except ChallengeMismatch:
        raise _refuse(by, Reason.ROTATION_CHALLENGE_MISMATCH,
                      "rotation statement not for this challenge") from None
    except BadKeyProof as exc:
        raise _refuse(by, Reason.NO_PROOF_OF_POSSESSION,
                      f"no proof of possession of the new {exc.key} key") from None
    except CryptoError:
        raise _refuse(by, Reason.ROTATION_MALFORMED, "rotation does not verify") from None


def check(session: Session, by: Principal, keys: LiaisonPublicKeys, request: RotationRequest,
          *, origin: str) -> SignedRotation:
    """Return the verified rotation of ``by`` to ``keys`` (its challenge used up), or refuse.

    Refused (:class:`RotationRefused`, logged): no statement or proofs (a
    token alone); a challenge unknown, used, expired, or another liaison's
    or key set's; a current key not usable; any proof failing; a statement
    naming other new keys than the request.
    """
    try:
        signed = request.signed()
    except FormatError:
        raise _refuse(by, Reason.ROTATION_MALFORMED, "malformed rotation statement") from None
    if signed is None or request.challenge_id is None:
        raise _refuse(by, Reason.ROTATION_PROOFS_MISSING, "rotation statement or proofs missing")
    row = _usable_challenge(session, by, request.challenge_id)
    statement = _verified(by, signed, _current_keys(session, by), _context(row, origin))
    if statement.new_keys != keys:
        raise _refuse(by, Reason.ROTATION_KEYS_MISMATCH, "rotation statement names other new keys")
    # Uses the challenge up (it is the liaison's), and sweeps everyone's expired ones.
    repo.purge_rotation_challenges(session, by.liaison_id, now())
    return signed


def entry_details(signed: SignedRotation, old_key_id: str,
                  keys: LiaisonPublicKeys) -> dict[str, Any]:
    """The ``details`` of a granted ``key.rotate`` entry (docs/protocol.md §9.4).

    With the entry's ``signature`` (the current key's), they let a verifier
    check the rotation from the ledger alone: the statement's exact bytes,
    whose digest, old and new keys are repeated here for readers.
    """
    return {
        "authorized_by": "current_key",
        "key_id": keys.key_id,
        "old_key_id": old_key_id,
        "fingerprint": keys.fingerprint,
        "signing_public": b64encode(keys.signing),
        "encryption_public": b64encode(keys.encryption),
        "statement": b64encode(signed.statement),
        "statement_sha256": hashlib.sha256(signed.statement).hexdigest(),
        "new_key_signature": b64encode(signed.new_key_signature),
    }
