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
