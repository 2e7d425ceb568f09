"""Request and response bodies for witnesses."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.auth.schemas import ID_PATTERN


class WitnessCreate(BaseModel):
    """Register a witness: a local name, its submission prefix and its verifier key."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=ID_PATTERN, max_length=128)
    url: str = Field(pattern=r"^https?://[^\s]+$", max_length=500,
                     description="Submission prefix; the service POSTs to <url>/add-checkpoint")
    verifier_key: str = Field(min_length=1, max_length=600,
                              description="<key name>+<hex key id>+<base64(0x04 || key)>")


class WitnessRead(BaseModel):
    """A registered witness and the size it last cosigned (as the service knows it)."""

    model_config = ConfigDict(from_attributes=True)
    name: str
    url: str
    verifier_key: str
    key_name: str
    last_size: int
    registered_by: str
    registered_at: datetime
