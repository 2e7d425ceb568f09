"""Queries for the key directory: a liaison's key entries in the ledger.

The only place that builds directory queries. Entries about a liaison are
indexed by subject at append time (``app.certificates.repository.note_subject``).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models.certificate import LedgerSubject
from app.models.identity import LiaisonKey
from app.models.witness import WitnessCosignature

KEY_ACTIONS = ("liaison.enrol", "key.rotate", "key.replace", "key.revoke")
"""Every action that registers, replaces or ends a liaison's key set."""


def key_entry_indices(session: Session, liaison_id: str, *, start: int, upto: int,
                      limit: int) -> list[int]:
    """Ledger indexes of the liaison's key entries in ``[start, upto)``, in order."""
    s = LedgerSubject
    return list(session.scalars(
        select(s.ledger_index).where(s.subject_type == "liaison", s.subject_id == liaison_id,
                                     s.action.in_(KEY_ACTIONS), s.ledger_index >= start,
                                     s.ledger_index < upto)
        .order_by(s.ledger_index).limit(limit)).all())


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
