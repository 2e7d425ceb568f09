"""Request and response bodies for states."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.models.identity import StateStatus
from app.text import DisplayText


class StateCreate(BaseModel):
    """Enrol a state (ISO 3166-1 alpha-2) by the note with which it joined."""

    model_config = ConfigDict(extra="forbid")
    code: str = Field(pattern=r"^[A-Z]{2}$")
    name: DisplayText = Field(min_length=1, max_length=200)
    joining_note: DisplayText = Field(min_length=1, max_length=200)


class StateUpdate(BaseModel):
    """Change a state's status (suspend, reactivate, withdraw)."""

    model_config = ConfigDict(extra="forbid")
    status: StateStatus
    reason: DisplayText = Field(min_length=1, max_length=500)


class StateRead(BaseModel):
    """A state as the API shows it."""

    model_config = ConfigDict(from_attributes=True)
    code: str
    name: str
    status: StateStatus
    joining_note: str
    created_at: datetime
    updated_at: datetime
