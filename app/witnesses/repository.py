"""Queries about witnesses and their cosignatures (the only place that builds them)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.models.witness import Witness, WitnessCosignature


def active(session: Session) -> Sequence[Witness]:
    """Every witness not removed, by name."""
    return session.scalars(
        select(Witness).where(Witness.removed_at.is_(None)).order_by(Witness.name)).all()


def active_named(session: Session, name: str) -> Witness | None:
    """The active witness called ``name``."""
    return session.scalars(
        select(Witness).where(Witness.name == name, Witness.removed_at.is_(None))).first()


def active_with_key(session: Session, verifier_key: str) -> Witness | None:
    """The active witness with ``verifier_key``."""
    return session.scalars(select(Witness).where(
        Witness.verifier_key == verifier_key, Witness.removed_at.is_(None))).first()


def get(session: Session, witness_id: int) -> Witness | None:
    """The witness with id ``witness_id`` (removed or not)."""
    return session.get(Witness, witness_id)


def set_last_size(session: Session, witness_id: int, size: int) -> None:
    """Record the size the witness last cosigned."""
    session.execute(update(Witness).where(Witness.id == witness_id).values(last_size=size))


def raise_last_size(session: Session, witness_id: int, size: int) -> None:
    """Record that the witness cosigned ``size``, unless a larger size is known already."""
    session.execute(update(Witness).where(Witness.id == witness_id, Witness.last_size < size)
                    .values(last_size=size))


def cosignature(session: Session, witness_id: int, size: int) -> WitnessCosignature | None:
    """The cosignature ``witness_id`` returned for the checkpoint of ``size``."""
    return session.get(WitnessCosignature, (witness_id, size))


def cosignature_lines(session: Session, size: int) -> list[str]:
    """Every cosignature line stored for the checkpoint of ``size``, by witness id."""
    return list(session.scalars(
        select(WitnessCosignature.line).where(WitnessCosignature.checkpoint_size == size)
        .order_by(WitnessCosignature.witness_id)).all())


def cosignature_counts(session: Session, after: int, witness_ids: Sequence[int],
                       limit: int = 16) -> list[tuple[int, int]]:
    """``(size, cosignatures)`` of the newest checkpoints larger than ``after`` that
    any of ``witness_ids`` cosigned, newest first."""
    c = WitnessCosignature
    rows = session.execute(
        select(c.checkpoint_size, func.count()).where(
            c.checkpoint_size > after, c.witness_id.in_(list(witness_ids)))
        .group_by(c.checkpoint_size).order_by(c.checkpoint_size.desc()).limit(limit))
    return [(int(size), int(count)) for size, count in rows]
