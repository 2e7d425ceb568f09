"""Response bodies of the directory (hashes lowercase hex, entries standard base64)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from app.liaisons.schemas import KeyRead


class DirectoryEntryRead(BaseModel):
    """One key entry: exact bytes (base64), inclusion proof in ``tree_size``, the key set."""

    index: int
    entry: str
    proof: list[str]
    key: KeyRead | None
    key_log_index: int | None = None
    """The entry's leaf in the key log the checkpoint carries (``None``: it carries none)."""
    key_log_proof: list[str] | None = None
    """RFC 9162 inclusion proof of that leaf in the checkpoint's key log."""


class DirectoryRead(BaseModel):
    """A liaison's key entries, all proven against one signed checkpoint note.

    ``consistency`` proves the checkpoint extends the tree of size ``since``
    (RFC 9162 §2.1.4), when the client gave one smaller than ``tree_size``.
    """

    liaison_id: str
    checkpoint: str
    tree_size: int
    since: int | None
    consistency: list[str] | None
    entries: list[DirectoryEntryRead]
    key_since: int | None = None
    key_consistency: list[str] | None = None
    """Proves the checkpoint's key log extends the one of size ``key_since``."""


class KeyLeavesRead(BaseModel):
    """Key-log leaves from ``start`` (standard base64), for a self-check's scan."""

    start: int
    leaves: list[str]


class KeyInclusionRead(BaseModel):
    """RFC 9162 inclusion proof of a key-log leaf in a key log of ``tree_size`` leaves."""

    index: int
    tree_size: int
    proof: list[str]


class KeyConsistencyRead(BaseModel):
    """RFC 9162 consistency proof between two key-log sizes checkpoints carry."""

    model_config = ConfigDict(populate_by_name=True)

    from_: int = Field(alias="from")
    to: int
    proof: list[str]
