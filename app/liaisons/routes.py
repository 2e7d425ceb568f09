"""``/v1/liaisons``: enrolment, public keys, rotation and revocation."""

from __future__ import annotations

import base64

from fastapi import APIRouter
from sqlalchemy.orm import Session

from app.auth.dependencies import CoordinatorDep, PrincipalDep
from app.deps import SettingsDep
from app.identity import repository as repo
from app.ledger import SessionDep, UnitOfWorkRoute
from app.liaisons import rotation, service
from app.liaisons.schemas import (
    KeyRead,
    KeyRevoke,
    KeyRotation,
    LiaisonCreate,
    LiaisonRead,
    RotationChallengeRead,
)
from app.models.identity import Liaison, LiaisonKey
from crypto import KEY_ROTATION_TYPE, LiaisonPublicKeys, b64encode

router = APIRouter(prefix="/v1/liaisons", tags=["liaisons"], route_class=UnitOfWorkRoute)


def key_read(key: LiaisonKey) -> KeyRead:
    """The API form of a key set."""
    public = LiaisonPublicKeys(signing=key.signing_public, encryption=key.encryption_public)
    return KeyRead(
        key_id=key.key_id, signing_public=base64.b64encode(key.signing_public).decode(),
        encryption_public=base64.b64encode(key.encryption_public).decode(),
        fingerprint=public.fingerprint, created_at=key.created_at,
        retired_at=key.retired_at, revoked_at=key.revoked_at,
    )


def liaison_read(session: Session, liaison: Liaison) -> LiaisonRead:
    """The API form of a liaison with their current key set."""
    key = repo.current_key(session, liaison.id)
    return LiaisonRead(id=liaison.id, state_code=liaison.state_code, name=liaison.name,
                       role=liaison.role, created_at=liaison.created_at,
                       current_key=key_read(key) if key else None)


@router.post("", status_code=201, name="liaison.enrol")
def enrol_liaison(body: LiaisonCreate, session: SessionDep, by: CoordinatorDep) -> LiaisonRead:
    """Enrol a liaison with their public keys (coordinators)."""
    keys = service.parse_public_keys(body.signing_public, body.encryption_public)
    liaison = service.enrol(session, by, body.id, body.state_code, name=body.name, role=body.role,
                            keys=keys)
    return liaison_read(session, liaison)


@router.get("", name="liaison.list")
def list_liaisons(session: SessionDep, by: PrincipalDep,
                  state: str | None = None) -> list[LiaisonRead]:
    """Liaisons, optionally of one state."""
    return [liaison_read(session, x) for x in service.listing(session, by, state)]


@router.get("/{liaison_id}", name="liaison.read")
def read_liaison(liaison_id: str, session: SessionDep, by: PrincipalDep) -> LiaisonRead:
    """One liaison and their current public keys."""
    return liaison_read(session, service.lookup(session, by, liaison_id))


@router.get("/{liaison_id}/keys", name="liaison.keys")
def list_keys(liaison_id: str, session: SessionDep, by: PrincipalDep) -> list[KeyRead]:
    """Every key set a liaison ever had (old ones verify old signatures)."""
    service.lookup(session, by, liaison_id)
    return [key_read(k) for k in repo.keys_of(session, liaison_id)]


@router.post("/me/keys/challenge", status_code=201, name="key.rotate_challenge")
def create_rotation_challenge(session: SessionDep, by: PrincipalDep,
                              settings: SettingsDep) -> RotationChallengeRead:
    """Start a key rotation: a one-time challenge for the statement to name."""
    issued = rotation.issue_challenge(session, by, settings.ledger_origin,
                                      settings.challenge_ttl_seconds)
    ch = issued.challenge
    return RotationChallengeRead(
        challenge_id=ch.challenge, liaison_id=ch.liaison, key_id=issued.key_id,
        nonce=b64encode(ch.nonce), server_box=b64encode(ch.server_box), origin=ch.origin,
        payload_type=KEY_ROTATION_TYPE, expires_at=issued.expires_at)


def _rotation_request(body: KeyRotation) -> rotation.RotationRequest:
    return rotation.RotationRequest(body.challenge_id, body.statement, body.signature,
                                    body.new_key_signature, body.box_proof)


@router.post("/me/keys", status_code=201, name="key.rotate")
def rotate_keys(body: KeyRotation, session: SessionDep, by: PrincipalDep,
                settings: SettingsDep) -> KeyRead:
    """Replace the caller's key set, signed by the current key (old key's tokens end)."""
    keys = service.parse_public_keys(body.signing_public, body.encryption_public)
    return key_read(service.rotate(session, by, keys, _rotation_request(body),
                                   origin=settings.ledger_origin))


@router.post("/{liaison_id}/keys/{key_id}/revoke", name="key.revoke")
def revoke_key(liaison_id: str, key_id: str, body: KeyRevoke, session: SessionDep,
               *, by: CoordinatorDep) -> KeyRead:
    """Revoke a liaison's key set (coordinators)."""
    return key_read(service.revoke(session, by, liaison_id, key_id, reason=body.reason))
