"""Request and response bodies of authentication."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"
B64_PATTERN = r"^[A-Za-z0-9+/]*={0,2}$"


class ChallengeCreate(BaseModel):
    """Ask for a login challenge."""

    model_config = ConfigDict(extra="forbid")
    liaison_id: str = Field(pattern=ID_PATTERN, max_length=128)


class ChallengeRead(BaseModel):
    """A challenge: sign ``payload`` (base64 of the exact bytes) as an auth challenge."""

    challenge_id: str
    payload: str
    payload_type: str
    expires_at: datetime


class TokenCreate(BaseModel):
    """Exchange a signed challenge for a bearer token."""

    model_config = ConfigDict(extra="forbid")
    challenge_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    key_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    signature: str = Field(pattern=B64_PATTERN, min_length=88, max_length=88)


class LedgerRef(BaseModel):
    """The ledger entry a request appended."""

    index: int
    leaf_hash: str


class TokenRead(BaseModel):
    """A bearer token, when it expires, and when the caller's clearance expires."""

    token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth token type name, not a secret
    expires_at: datetime
    clearance_expires_at: datetime | None
    ledger: LedgerRef
