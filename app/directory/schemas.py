"""Response bodies of the directory (hashes lowercase hex, entries standard base64)."""

from __future__ import annotations

from pydantic import BaseModel

from app.liaisons.schemas import KeyRead


class DirectoryEntryRead(BaseModel):
    """One key entry: exact bytes (base64), inclusion proof in ``tree_size``, the key set."""

    index: int
    entry: str
    proof: list[str]
    key: KeyRead | None


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
