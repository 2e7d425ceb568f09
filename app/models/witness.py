"""Registered witnesses and the cosignatures they returned.

A witness is registered by a coordinator and removed by one (the row stays,
marked removed, so past cosignatures keep their witness). ``last_size`` is the
tree size the witness last cosigned as far as the service knows: the old size
of the next ``add-checkpoint`` request (C2SP tlog-witness), corrected from a
409 answer. Cosignatures are kept per checkpoint size and also merged into
the checkpoint's stored note.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime


class Witness(Base):
    """A witness node the service submits checkpoints to."""

    __tablename__ = "witnesses"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), index=True)
    url: Mapped[str] = mapped_column(String(500))
    verifier_key: Mapped[str] = mapped_column(String(600))
    key_name: Mapped[str] = mapped_column(String(400))
    last_size: Mapped[int] = mapped_column(BigInteger, default=0)
    registered_by: Mapped[str] = mapped_column(ForeignKey("liaisons.id"))
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime())
    removed_by: Mapped[str | None] = mapped_column(ForeignKey("liaisons.id"), default=None)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class WitnessCosignature(Base):
    """A C2SP tlog-cosignature line a witness returned for the checkpoint of a size."""

    __tablename__ = "witness_cosignatures"

    witness_id: Mapped[int] = mapped_column(ForeignKey("witnesses.id"), primary_key=True)
    checkpoint_size: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("ledger_checkpoints.size"), primary_key=True, index=True)
    line: Mapped[str] = mapped_column(Text)
    timestamp: Mapped[int] = mapped_column(BigInteger)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
