"""Notifications for liaisons, streamed as server-sent events."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime


class Event(Base):
    """Something a liaison should hear about at once (ids and metadata only).

    The event id is the ledger index of the action that caused it. Ledger
    appends hold the ledger head lock until their transaction commits, so
    indices become visible in order: a reader that has seen index N has seen
    every event below N, and resuming from ``Last-Event-ID`` never skips one.
    """

    __tablename__ = "events"

    liaison_id: Mapped[str] = mapped_column(ForeignKey("liaisons.id"), primary_key=True)
    ledger_index: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    packet_id: Mapped[str] = mapped_column(String(64))
    data: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
