"""Request and response bodies of the certificate routes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.auth.schemas import LedgerRef
from app.text import DisplayText

TEXT_PATTERN = r"^[^\s\x00-\x1f\x7f](?:[^\x00-\x1f\x7f]{0,498}[^\s\x00-\x1f\x7f])?$"
"""1..500 characters, no control characters, no leading or trailing space."""


class CertificateCreate(BaseModel):
    """Ask for a custody certificate for a named court or authority and a stated purpose."""

    model_config = ConfigDict(extra="forbid")
    issued_to: DisplayText = Field(pattern=TEXT_PATTERN, max_length=500)
    purpose: DisplayText = Field(pattern=TEXT_PATTERN, max_length=500)


class PermissionCreate(BaseModel):
    """The originator permits judicial use of an H1 packet before a court."""

    model_config = ConfigDict(extra="forbid")
    court: DisplayText = Field(pattern=TEXT_PATTERN, max_length=500)
    purpose: DisplayText | None = Field(default=None, pattern=TEXT_PATTERN, max_length=500)


class PermissionRead(BaseModel):
    """A recorded judicial-use permission."""

    packet_id: str
    court: str
    purpose: str | None
    granted_by: str
    granted_at: datetime
    ledger: LedgerRef


class RefreshRead(BaseModel):
    """The newest signed checkpoint and the consistency proof from the certificate's size."""

    certificate_id: str
    from_size: int
    to_size: int
    checkpoint: str
    consistency: list[str]
    ledger: LedgerRef


class CertificateStatus(BaseModel):
    """A certificate not sealed yet: its issue entry, and the cosignatures so far."""

    id: str
    packet_id: str
    status: Literal["pending"]
    reissue_of: str | None
    ledger_index: int
    cosignatures: int
    required: int
    detail: str
