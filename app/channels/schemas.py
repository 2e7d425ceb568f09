"""Request and response bodies for channels."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.auth.schemas import ID_PATTERN
from app.clearances.schemas import LevelName
from app.models.channel import ChannelKind
from app.text import DisplayText


class ChannelCreate(BaseModel):
    """Create a channel with its first members."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=ID_PATTERN, max_length=128)
    name: DisplayText = Field(min_length=1, max_length=200)
    kind: ChannelKind
    crime_type: DisplayText | None = Field(default=None, min_length=1, max_length=100)
    min_clearance: LevelName
    members: list[str] = Field(default_factory=list, max_length=1000)

    @model_validator(mode="after")
    def _crime_type(self) -> ChannelCreate:
        if (self.kind == ChannelKind.SPECIALIZED) != (self.crime_type is not None):
            raise ValueError("crime_type is required for specialized channels, and only them")
        return self


class MemberAdd(BaseModel):
    """Add a liaison to a channel."""

    model_config = ConfigDict(extra="forbid")
    liaison_id: str = Field(pattern=ID_PATTERN, max_length=128)


class ChannelRead(BaseModel):
    """A channel and its members."""

    id: str
    name: str
    kind: ChannelKind
    crime_type: str | None
    min_clearance: LevelName
    members: list[str]
    created_by: str
    created_at: datetime
