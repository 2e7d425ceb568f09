"""Ciphertext blobs kept in the database (``CADENA_BLOB_STORE=database``, ``app.blob_db``).

``blob_chunks`` holds a blob's bytes in fixed-size rows, written in the one
transaction that also inserts its ``blobs`` row after the digest was checked:
a blob is either absent or complete. Only ciphertext (DESIGN.md invariant 1).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime


class Blob(Base):
    """A complete blob: its size, the chunk size it was cut into, its last upload."""

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger())
    chunk_bytes: Mapped[int] = mapped_column(Integer())
    stored_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class BlobChunk(Base):
    """Bytes ``seq * chunk_bytes ..`` of blob ``sha256``."""

    __tablename__ = "blob_chunks"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer(), primary_key=True, autoincrement=False)
    data: Mapped[bytes] = mapped_column(LargeBinary())
