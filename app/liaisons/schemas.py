"""Request and response bodies for liaisons and their keys."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.auth.schemas import B64_PATTERN, ID_PATTERN
from app.models.identity import Role
from app.text import DisplayText


class PublicKeySet(BaseModel):
    """A liaison's public keys, base64: Ed25519 (signing) and X25519 (encryption)."""

    model_config = ConfigDict(extra="forbid")
    signing_public: str = Field(pattern=B64_PATTERN, min_length=44, max_length=44)
    encryption_public: str = Field(pattern=B64_PATTERN, min_length=44, max_length=44)


class LiaisonCreate(PublicKeySet):
    """Enrol a liaison of a state with their public keys."""

    id: str = Field(pattern=ID_PATTERN, max_length=128)
    state_code: str = Field(pattern=r"^[A-Z]{2}$")
    name: DisplayText = Field(min_length=1, max_length=200)
    role: Role


class KeyRotation(PublicKeySet):
    """Rotate to new public keys: the statement for a challenge and its three proofs.

    The proofs are optional here only so that a request without them (a bearer
    token alone) reaches the service, which refuses it and logs the refusal.
    """

    challenge_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$")
    statement: str | None = Field(default=None, pattern=B64_PATTERN, min_length=4,
                                  max_length=4096)
    signature: str | None = Field(default=None, pattern=B64_PATTERN, min_length=88,
                                  max_length=88)
    new_key_signature: str | None = Field(default=None, pattern=B64_PATTERN, min_length=88,
                                          max_length=88)
    box_proof: str | None = Field(default=None, pattern=B64_PATTERN, min_length=44,
                                  max_length=44)


class RotationChallengeRead(BaseModel):
    """A rotation challenge: what the statement must name (binary values in base64)."""

    challenge_id: str
    liaison_id: str
    key_id: str
    nonce: str
    server_box: str
    origin: str
    payload_type: str
    expires_at: datetime


class KeyRevoke(BaseModel):
    """Revoke a key set."""

    model_config = ConfigDict(extra="forbid")
    reason: DisplayText = Field(min_length=1, max_length=500)


class KeyRead(BaseModel):
    """A key set and its status."""

    key_id: str
    signing_public: str
    encryption_public: str
    fingerprint: str
    created_at: datetime
    retired_at: datetime | None
    revoked_at: datetime | None


class LiaisonRead(BaseModel):
    """A liaison, with their current key set (if any)."""

    id: str
    state_code: str
    name: str
    role: Role
    created_at: datetime
    current_key: KeyRead | None
