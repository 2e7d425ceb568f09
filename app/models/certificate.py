"""Custody certificates, judicial-use permissions, and the index of entries by subject.

``ledger_subjects`` lets the service find every ledger entry about a packet
(and the enrolment of a liaison's key) without scanning the ledger, whose
table holds only raw entry bytes. ``app.ledger.recording.record`` fills it in the same
transaction as the entry, for subjects of type ``packet`` and ``liaison``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime


class LedgerSubject(Base):
    """One ledger entry about a subject (packet or liaison), with its action."""

    __tablename__ = "ledger_subjects"

    subject_type: Mapped[str] = mapped_column(String(32), primary_key=True)
    subject_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    ledger_index: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    action: Mapped[str] = mapped_column(String(64))


class CustodyCertificate(Base):
    """An issued certificate: for whom, why, by whom, and its ``certificate.issue`` entry.

    ``bundle`` is empty (pending) until a checkpoint with the cosignatures the
    policy requires covers the entry; then it holds the sealed bytes, which
    every later collection serves unchanged.
    """

    __tablename__ = "certificates"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    packet_id: Mapped[str] = mapped_column(ForeignKey("packets.id"), index=True)
    issued_to: Mapped[str] = mapped_column(String(500))
    purpose: Mapped[str] = mapped_column(String(500))
    issued_by: Mapped[str] = mapped_column(ForeignKey("liaisons.id"))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ledger_index: Mapped[int] = mapped_column(BigInteger)
    bundle: Mapped[bytes | None] = mapped_column(LargeBinary(), default=None, deferred=True)
    checkpoint_size: Mapped[int | None] = mapped_column(BigInteger, default=None)
    sealed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    reissue_of: Mapped[str | None] = mapped_column(String(36), default=None)


class JudicialPermission(Base):
    """The originator's recorded permission to use an H1 packet before a named court."""

    __tablename__ = "judicial_permissions"

    packet_id: Mapped[str] = mapped_column(ForeignKey("packets.id"), primary_key=True)
    court: Mapped[str] = mapped_column(String(500), primary_key=True)
    purpose: Mapped[str | None] = mapped_column(String(500), default=None)
    granted_by: Mapped[str] = mapped_column(ForeignKey("liaisons.id"))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ledger_index: Mapped[int] = mapped_column(BigInteger)
