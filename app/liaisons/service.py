"""Rules for liaisons: enrolment, key rotation and revocation."""

from __future__ import annotations

import base64
from collections.abc import Sequence

from sqlalchemy import update
from sqlalchemy.orm import Session

from app.auth.service import Principal
from app.errors import CadenaError, NotFound, RuleRefused
from app.identity import repository as repo
from app.ledger import draft, now, record
from app.liaisons import rotation
from app.models.auth import AuthToken
from app.models.identity import Liaison, LiaisonKey, Role
from crypto import CryptoError, InvalidPublicKey, LiaisonPublicKeys, b64encode, check_public_keys


class Conflict(RuleRefused):
    """The request conflicts with what exists."""

    status, code, title = 409, "conflict", "Conflict"


class InvalidKey(CadenaError):
    """The public keys given are not valid key material."""

    status, code, title = 422, "invalid-key", "Invalid public key"


def parse_public_keys(signing_b64: str, encryption_b64: str) -> LiaisonPublicKeys:
    """Decode and validate a public key set (refused: small-order or non-canonical points)."""
    try:
        keys = LiaisonPublicKeys(signing=base64.b64decode(signing_b64, validate=True),
                                 encryption=base64.b64decode(encryption_b64, validate=True))
    except (ValueError, CryptoError) as exc:
        raise InvalidKey("public keys must be 32-byte Ed25519 and X25519 keys") from exc
    return check_keys(keys)


def check_keys(keys: LiaisonPublicKeys) -> LiaisonPublicKeys:
    """``keys`` if both are safe points to verify with and encrypt to, else :class:`InvalidKey`."""
    try:
        return check_public_keys(keys)
    except InvalidPublicKey as exc:
        raise InvalidKey(str(exc)) from exc


def add_key(session: Session, liaison_id: str, keys: LiaisonPublicKeys) -> LiaisonKey:
    """Register a key set for a liaison (refused if that key set is known already)."""
    if repo.get_key(session, keys.key_id) is not None:
        raise Conflict("this key set is already registered")
    key = LiaisonKey(key_id=keys.key_id, liaison_id=liaison_id, signing_public=keys.signing,
                     encryption_public=keys.encryption, created_at=now())
    session.add(key)
    return key


def enrolment_details(state_code: str, role: Role, keys: LiaisonPublicKeys) -> dict[str, str]:
    """The ``details`` of a ``liaison.enrol`` entry: the public keys themselves, so that a
    client checks a served key against the ledger alone (docs/protocol.md §10)."""
    return {"state": state_code, "role": role.value, "key_id": keys.key_id,
            "fingerprint": keys.fingerprint, "signing_public": b64encode(keys.signing),
            "encryption_public": b64encode(keys.encryption)}


def enrol(session: Session, by: Principal | None, liaison_id: str, state_code: str, *, name: str,
          role: Role, keys: LiaisonPublicKeys) -> Liaison:
    """Enrol a liaison with their keys; ``by`` is None only for the bootstrap."""
    if repo.get_state(session, state_code) is None:
        raise NotFound(f"no state {state_code}")
    if repo.get_liaison(session, liaison_id) is not None:
        raise Conflict(f"liaison {liaison_id} already exists")
    liaison = Liaison(id=liaison_id, state_code=state_code, name=name, role=role,
                      created_at=now())
    session.add(liaison)
    session.flush()
    add_key(session, liaison_id, keys)
    record(session, draft(by.actor if by else None, "liaison.enrol",
                          {"type": "liaison", "id": liaison_id},
                          details=enrolment_details(state_code, role, keys)))
    return liaison


def _revoke_tokens(session: Session, key_id: str) -> None:
    session.execute(update(AuthToken).where(AuthToken.key_id == key_id)
                    .where(AuthToken.revoked_at.is_(None)).values(revoked_at=now()))


def rotate(session: Session, by: Principal, keys: LiaisonPublicKeys,
           request: rotation.RotationRequest, *, origin: str) -> LiaisonKey:
    """Replace the caller's key set, given a rotation signed by the current key.

    ``request`` must carry the statement and the three proofs for a challenge
    of the caller (:func:`app.liaisons.rotation.check`; refused and logged
    otherwise). The old key set stays for verifying old signatures.
    """
    signed = rotation.check(session, by, keys, request, origin=origin)
    old = repo.get_key(session, by.key_id)
    key = add_key(session, by.liaison_id, keys)
    if old is not None and old.retired_at is None:
        old.retired_at = now()
        _revoke_tokens(session, old.key_id)
    record(session, draft(by.actor, rotation.ROTATE, {"type": "liaison", "id": by.liaison_id},
                          details=rotation.entry_details(signed, by.key_id, keys),
                          signature=b64encode(signed.signature)))
    return key


def revoke(session: Session, by: Principal, liaison_id: str, key_id: str,
           *, reason: str) -> LiaisonKey:
    """Revoke a key set: no login, no token, no new signature accepted from it."""
    key = repo.get_key(session, key_id)
    if key is None or key.liaison_id != liaison_id:
        raise NotFound(f"liaison {liaison_id} has no key {key_id}")
    if key.revoked_at is None:
        key.revoked_at = now()
        key.revocation_reason = reason
    _revoke_tokens(session, key_id)
    record(session, draft(by.actor, "key.revoke", {"type": "liaison", "id": liaison_id},
                          details={"key_id": key_id, "reason": reason}))
    return key


def listing(session: Session, by: Principal, state_code: str | None) -> Sequence[Liaison]:
    """Liaisons (optionally of one state); logged."""
    record(session, draft(by.actor, "liaison.list", {"type": "liaisons", "id": state_code or "*"}))
    return repo.list_liaisons(session, state_code)


def lookup(session: Session, by: Principal, liaison_id: str) -> Liaison:
    """One liaison (to fetch their public keys before sealing); logged."""
    liaison = repo.get_liaison(session, liaison_id)
    if liaison is None:
        raise NotFound(f"no liaison {liaison_id}")
    record(session, draft(by.actor, "liaison.read", {"type": "liaison", "id": liaison_id}))
    return liaison
