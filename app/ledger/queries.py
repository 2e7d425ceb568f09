"""What features read of the ledger: exact entries, signed checkpoints, proofs.

The ledger's tables are the kernel's; features read them only through these
functions (and ``app.ledger.subjects`` for the subject index). Proofs come
from :meth:`ledger.store.log.Ledger.inclusion_proof`, so the trust rule holds: a
proof is given only against a tree size that a signed checkpoint has.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.ledger.unit_of_work import tree_cache_of
from app.models.ledger import LEDGER_TABLES
from ledger import Ledger, StoredCheckpoint, merkle
from ledger.sql import SqlStorage


def raw_entries(session: Session, indices: Iterable[int]) -> dict[int, bytes]:
    """The exact bytes of the entries at ``indices``."""
    wanted = sorted(set(indices))
    if not wanted:
        return {}
    c = LEDGER_TABLES.entries.c
    rows = session.execute(select(c.index, c.entry).where(c.index.in_(wanted)))
    return {int(index): bytes(raw) for index, raw in rows}


def is_signed_size(session: Session, size: int) -> bool:
    """Whether the ledger signed a checkpoint of exactly ``size`` (a primary-key lookup)."""
    c = LEDGER_TABLES.checkpoints.c
    return session.execute(select(c.size).where(c.size == size)).first() is not None


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


class _Prefetched(SqlStorage):
    """The ledger's storage with the tree nodes of many proofs read in one query.

    A certificate holds dozens of proofs against one checkpoint: their nodes
    come from one read, and the checkpoint is looked up once.
    """

    def __init__(self, session: Session, indices: Iterable[int], size: int) -> None:
        super().__init__(session, LEDGER_TABLES, cache=tree_cache_of(session))
        keys = {key for index in indices for lo, hi in merkle.inclusion_ranges(index, size)
                for key in merkle.perfect_cover(lo, hi)}
        self._found = super().nodes(sorted(keys))
        self._checkpoints: dict[int, StoredCheckpoint | None] = {}

    def nodes(self, keys: Sequence[merkle.Node]) -> Mapping[merkle.Node, bytes]:
        """The prefetched hashes of ``keys`` (the storage's for any not prefetched)."""
        missing = [key for key in keys if key not in self._found]
        found = {key: self._found[key] for key in keys if key in self._found}
        return {**found, **super().nodes(missing)} if missing else found

    def checkpoint_at(self, size: int) -> StoredCheckpoint | None:
        """The stored checkpoint of ``size``, read once."""
        if size not in self._checkpoints:
            self._checkpoints[size] = super().checkpoint_at(size)
        return self._checkpoints[size]


def inclusion_proofs(session: Session, indices: Iterable[int],
                     checkpoint: StoredCheckpoint) -> dict[int, list[bytes]]:
    """RFC 9162 §2.1.3.1 inclusion proofs of ``indices`` in the tree of a signed ``checkpoint``.

    Raises ``ledger.errors.InclusionProofError`` if no signed checkpoint has
    that size (the trust rule) or an index is outside it.
    """
    wanted = sorted(set(indices))
    ledger = Ledger(_Prefetched(session, wanted, checkpoint.size))
    return {index: ledger.inclusion_proof(index, checkpoint.size) for index in wanted}
