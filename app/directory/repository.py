"""Queries for the key directory: key sets and cosigned sizes.

The only place that builds directory queries; the key entries themselves are
found through the kernel's subject index (``app.ledger.subjects``).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models.identity import LiaisonKey
from app.models.witness import WitnessCosignature


def keys_by_id(session: Session, liaison_id: str) -> dict[str, LiaisonKey]:
    """The liaison's registered key sets, by key id."""
    rows: Sequence[LiaisonKey] = session.scalars(
        select(LiaisonKey).where(LiaisonKey.liaison_id == liaison_id)).all()
    return {key.key_id: key for key in rows}


def newest_cosigned_size(session: Session, witnesses: int) -> int | None:
    """The largest checkpoint size with at least ``witnesses`` stored cosignatures."""
    c = WitnessCosignature
    return session.scalars(
        select(c.checkpoint_size).group_by(c.checkpoint_size)
        .having(func.count() >= witnesses).order_by(c.checkpoint_size.desc()).limit(1)).first()
