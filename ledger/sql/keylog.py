"""The key log's SQL tables and store (``ledger.store.keylog``; revision ``0012_key_log``).

Schema::

    key_log_leaves       index (pk), ledger_index (unique), liaison_id, leaf
    key_log_nodes        level, index (pk), hash   -- perfect subtrees, as the ledger's
    key_log_checkpoints  size (pk: the ledger checkpoint's), key_size, key_root
    key_log_head         id = 1, ledger_size (entries processed), size (leaves)

Rows are written only with a checkpoint, in its transaction: the head's
compare-and-swap (:meth:`SqlKeyLog.store`) refuses a key log extended from
a base another process moved meanwhile, so a loser leaves no row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Select,
    SmallInteger,
    String,
    Table,
    and_,
    bindparam,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from ledger.errors import ConflictError, StorageError
from ledger.format.keylog import KeyLeaf, KeyLogHead, decode_key_leaf
from ledger.format.merkle import (
    HASH_SIZE,
    Node,
    frontier,
    inclusion_proof,
    inclusion_ranges,
    perfect_cover,
)
from ledger.sql.schema import HEAD_ID
from ledger.store.keylog import KeyedCheckpoint, KeyLogBase

_Index = BigInteger().with_variant(Integer(), "sqlite")
_LOOKUP_CHUNK = 200
_LOOKUPS: dict[tuple[int, int], Select[Any]] = {}


class _Found:
    """Nodes read beforehand, as a ``NodeReader``."""

    def __init__(self, found: Mapping[Node, bytes]) -> None:
        self._found = found

    def nodes(self, keys: Sequence[Node]) -> Mapping[Node, bytes]:
        return {k: self._found[k] for k in keys if k in self._found}


@dataclass(frozen=True)
class KeyLogTables:
    """The four key-log tables, registered on one ``MetaData``."""

    leaves: Table
    nodes: Table
    checkpoints: Table
    head: Table


def define_key_log_tables(metadata: MetaData) -> KeyLogTables:
    """Define the key-log tables on ``metadata`` (call once per metadata)."""
    leaves = Table(
        "key_log_leaves", metadata,
        Column("index", _Index, primary_key=True, autoincrement=False),
        Column("ledger_index", BigInteger, nullable=False, unique=True),
        Column("liaison_id", String(255), nullable=False),
        Column("leaf", LargeBinary, nullable=False),
        Index("ix_key_log_leaves_liaison", "liaison_id", "ledger_index"),
    )
    nodes = Table(
        "key_log_nodes", metadata,
        Column("level", SmallInteger, primary_key=True, autoincrement=False),
        Column("index", BigInteger, primary_key=True, autoincrement=False),
        Column("hash", LargeBinary(HASH_SIZE), nullable=False),
        sqlite_with_rowid=False,
    )
    checkpoints = Table(
        "key_log_checkpoints", metadata,
        Column("size", BigInteger, primary_key=True, autoincrement=False),
        Column("key_size", BigInteger, nullable=False, index=True),
        Column("key_root", LargeBinary(HASH_SIZE), nullable=False),
    )
    head = Table(
        "key_log_head", metadata,
        Column("id", SmallInteger, primary_key=True, autoincrement=False),
        Column("ledger_size", BigInteger, nullable=False),
        Column("size", BigInteger, nullable=False),
        CheckConstraint(f"id = {HEAD_ID}", name="single_row"),
    )
    return KeyLogTables(leaves, nodes, checkpoints, head)


@dataclass(frozen=True)
class KeyedIndex:
    """Where a key entry of the ledger sits in the key log."""

    key_index: int
    ledger_index: int


class SqlKeyLog:
    """The key log through ``session`` (its transaction): the base, reads, and the store."""

    def __init__(self, session: Session, tables: KeyLogTables) -> None:
        """Read and write through ``session``."""
        self._session, self._t = session, tables

    def _conn(self) -> Connection:
        return self._session.connection()

    def size(self) -> int:
        """How many leaves are stored (every one a signed checkpoint carries)."""
        h = self._t.head.c
        found = self._conn().execute(select(h.size).where(h.id == HEAD_ID)).scalar()
        return int(found or 0)

    def base(self) -> KeyLogBase:
        """The stored key log: entries processed, leaves, frontier hashes."""
        h = self._t.head.c
        row = self._conn().execute(select(h.ledger_size, h.size).where(h.id == HEAD_ID)).first()
        if row is None:
            return KeyLogBase(0, 0, [])
        keys = frontier(int(row.size))
        found = self.nodes(keys)
        if len(found) != len(keys):
            raise StorageError("key-log frontier nodes are missing")
        return KeyLogBase(int(row.ledger_size), int(row.size), [found[k] for k in keys])

    def store(self, prepared: KeyedCheckpoint) -> None:
        """Store the key-log rows of ``prepared`` (after its checkpoint, same transaction).

        ``ConflictError`` if the stored key log is no longer the base it
        was extended from (another process stored a checkpoint meanwhile).
        """
        base, conn, h = prepared.base, self._conn(), self._t.head.c
        if self._conn().execute(select(h.id).where(h.id == HEAD_ID)).first() is None:
            conn.execute(insert(self._t.head), [{"id": HEAD_ID, "ledger_size": 0, "size": 0}])
        moved = conn.execute(
            update(self._t.head)
            .where(h.id == HEAD_ID, h.ledger_size == base.ledger_size, h.size == base.size)
            .values(ledger_size=prepared.checkpoint.size, size=prepared.head.size))
        if moved.rowcount != 1:
            raise ConflictError("the key log moved since this checkpoint was prepared")
        if prepared.leaves:
            conn.execute(insert(self._t.leaves), [
                {"index": i, "ledger_index": leaf.ledger_index, "liaison_id": leaf.liaison_id,
                 "leaf": leaf.encode()}
                for i, leaf in enumerate(prepared.leaves, base.size)])
        if prepared.nodes:
            conn.execute(insert(self._t.nodes), [
                {"level": level, "index": index, "hash": value}
                for (level, index), value in prepared.nodes])
        conn.execute(insert(self._t.checkpoints), [{
            "size": prepared.checkpoint.size, "key_size": prepared.head.size,
            "key_root": prepared.head.root}])

    def nodes(self, keys: Sequence[Node]) -> Mapping[Node, bytes]:
        """Hashes of the stored key-tree nodes among ``keys`` (a ``NodeReader``)."""
        found: dict[Node, bytes] = {}
        wanted = sorted(set(keys))
        for start in range(0, len(wanted), _LOOKUP_CHUNK):
            chunk = wanted[start:start + _LOOKUP_CHUNK]
            params: dict[str, int] = {}
            for i, (level, index) in enumerate(chunk):
                params[f"l{i}"], params[f"i{i}"] = level, index
            for row in self._conn().execute(self._lookup(len(chunk)), params):
                found[(int(row[0]), int(row[1]))] = bytes(row[2])
        return found

    def _lookup(self, count: int) -> Select[Any]:
        # An OR of primary-key equalities, built once per key count and
        # table (building the expression costs more than running it).
        key = (id(self._t), count)
        found = _LOOKUPS.get(key)
        if found is None:
            n = self._t.nodes.c
            built: Select[Any] = select(n.level, n.index, n.hash).where(or_(*(
                and_(n.level == bindparam(f"l{i}"), n.index == bindparam(f"i{i}"))
                for i in range(count))))
            found = _LOOKUPS[key] = built
        return found

    def inclusion_proofs(self, indices: Sequence[int], size: int) -> dict[int, list[bytes]]:
        """RFC 9162 inclusion proofs of several leaves in the key log of ``size``, one query."""
        covers = {i: [perfect_cover(lo, hi) for lo, hi in inclusion_ranges(i, size)]
                  for i in indices}
        found = self.nodes([key for cover in covers.values() for keys in cover for key in keys])
        reader = _Found(found)
        return {i: inclusion_proof(reader, i, size) for i in indices}

    def leaves(self, start: int, stop: int) -> list[KeyLeaf]:
        """The leaves ``start <= i < stop``, in order."""
        c = self._t.leaves.c
        rows = self._conn().execute(select(c.leaf).where(c.index >= start, c.index < stop)
                                    .order_by(c.index)).scalars()
        return [decode_key_leaf(bytes(raw)) for raw in rows]

    def head_at(self, ledger_size: int) -> KeyLogHead | None:
        """The key log the checkpoint of ``ledger_size`` carries, if stored."""
        c = self._t.checkpoints.c
        row = self._conn().execute(select(c.key_size, c.key_root)
                                   .where(c.size == ledger_size)).first()
        return None if row is None else KeyLogHead(int(row.key_size), bytes(row.key_root))

    def is_signed_size(self, key_size: int) -> bool:
        """Whether some signed checkpoint carries a key log of ``key_size`` leaves."""
        c = self._t.checkpoints.c
        return self._conn().execute(
            select(c.size).where(c.key_size == key_size).limit(1)).first() is not None

    def entries_of(self, liaison_id: str, *, start: int, key_size: int,
                   limit: int) -> list[KeyedIndex]:
        """The liaison's key entries from ledger index ``start`` within ``key_size`` leaves."""
        c = self._t.leaves.c
        rows = self._conn().execute(
            select(c.index, c.ledger_index)
            .where(c.liaison_id == liaison_id, c.ledger_index >= start, c.index < key_size)
            .order_by(c.ledger_index).limit(limit))
        return [KeyedIndex(int(r[0]), int(r.ledger_index)) for r in rows]
