"""Queries of the ledger endpoints that the ledger core's storage protocol does not offer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models.ledger import LEDGER_TABLES


@dataclass(frozen=True)
class SignedCheckpoint:
    """A stored checkpoint with the time it was stored (``signed_at``, UTC)."""

    size: int
    root: bytes
    note: str
    time: datetime


def checkpoints_after(session: Session, after: int, limit: int) -> list[SignedCheckpoint]:
    """Up to ``limit`` stored checkpoints of size greater than ``after``, smallest first."""
    c = LEDGER_TABLES.checkpoints.c
    rows = session.execute(select(c.size, c.root, c.note, c.signed_at)
                           .where(c.size > after).order_by(c.size).limit(limit))
    return [SignedCheckpoint(size=int(row.size), root=bytes(row.root), note=str(row.note),
                             time=_utc(row.signed_at)) for row in rows]


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; the column is always written in UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
