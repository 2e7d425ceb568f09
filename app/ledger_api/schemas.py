"""Response bodies of the ledger endpoints (hashes lowercase hex, entries base64)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class EntryItem(BaseModel):
    """One entry: its index and its exact stored bytes, standard base64."""

    index: int
    entry: str


class EntriesRead(BaseModel):
    """A page of entries."""

    entries: list[EntryItem]


class InclusionRead(BaseModel):
    """An RFC 9162 inclusion proof."""

    index: int
    tree_size: int
    proof: list[str]


class ConsistencyRead(BaseModel):
    """An RFC 9162 consistency proof."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)
    from_: int = Field(alias="from")
    to: int
    proof: list[str]


class RefusalDetailRead(BaseModel):
    """A refusal's auditor-only detail: ``digest = SHA-256(salt || UTF-8(detail))``, hex."""

    index: int
    detail: str
    salt: str
    digest: str


class CheckpointItem(BaseModel):
    """A signed checkpoint: size, root (hex), when it was stored, and the note with cosignatures."""

    size: int
    root: str
    time: datetime
    note: str


class CheckpointsRead(BaseModel):
    """A page of signed checkpoints, oldest (smallest) first.

    ``next`` is the ``after`` of the next page, ``None`` on the last one.
    """

    checkpoints: list[CheckpointItem]
    next: int | None
