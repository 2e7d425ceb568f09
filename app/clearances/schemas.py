"""Request and response bodies for clearances."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.text import DisplayText
from app.timestamp import UTCTimestamp

LevelName = Literal["RESTRICTED", "CONFIDENTIAL", "SECRET"]
_NAMES: dict[int, LevelName] = {1: "RESTRICTED", 2: "CONFIDENTIAL", 3: "SECRET"}


def level_name(level: int) -> LevelName:
    """The name of a stored clearance level."""
    return _NAMES[level]


class ClearanceCreate(BaseModel):
    """Grant a clearance at a level over a validity window."""

    model_config = ConfigDict(extra="forbid")
    liaison_id: str = Field(max_length=128)
    level: LevelName
    valid_from: UTCTimestamp
    valid_until: UTCTimestamp

    @model_validator(mode="after")
    def _window(self) -> ClearanceCreate:
        if self.valid_until <= self.valid_from:
            raise ValueError("valid_until must be after valid_from")
        return self


class ClearanceRenew(BaseModel):
    """Extend a clearance to a new end of validity."""

    model_config = ConfigDict(extra="forbid")
    valid_until: UTCTimestamp


class ClearanceRevoke(BaseModel):
    """Revoke a clearance."""

    model_config = ConfigDict(extra="forbid")
    reason: DisplayText = Field(min_length=1, max_length=500)


class ClearanceRead(BaseModel):
    """A clearance and whether it is in force now."""

    id: str
    liaison_id: str
    level: LevelName
    valid_from: datetime
    valid_until: datetime
    granted_by: str
    granted_at: datetime
    revoked_at: datetime | None
    in_force: bool
