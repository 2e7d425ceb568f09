"""The ledger's SQL tables (SQLAlchemy Core), shared by the storage and the migrations.

Schema (created by the Alembic revision ``0001_ledger``)::

    ledger_entries      index (pk), entry (the exact bytes), leaf_hash
    ledger_nodes        last_leaf, level (pk), index, hash
    ledger_checkpoints  size (pk), root, note, signed_at, seq
    ledger_head         id = 1 (single row), size, last_leaf_hash, checkpoint_seq

(``seq`` and ``checkpoint_seq``: revision ``0010_checkpoint_sequence``.)

Why this shape:

- Nodes are keyed by ``(last_leaf, level)``, where ``last_leaf = (index + 1) *
  2**level - 1`` is the last leaf a perfect subtree covers. That pair names a
  node as uniquely as ``(level, index)`` does (a CHECK ties the two), but every
  append writes keys at the right edge of the B-tree and ``iter_nodes()`` is
  a plain primary-key scan, so one index serves both writes and the
  verifier's streaming order. Point lookups translate ``(level, index)``.
- On SQLite, ``ledger_entries.index`` is an ``INTEGER PRIMARY KEY`` (the rowid)
  and ``ledger_nodes`` is ``WITHOUT ROWID``: one B-tree per table.
- The head row holds the size and the last leaf hash, so taking the append
  lock and learning where to append is one query (which also reads the
  last entry's stored leaf hash, so a head that disagrees is refused).
- Checkpoints are numbered 1, 2, ... as they are stored, and the head keeps
  the latest number: a deleted checkpoint row, the latest included, leaves a
  gap the verifier names (``missing_checkpoint``).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    Table,
    Text,
    text,
)

from ledger.format.merkle import HASH_SIZE, Node

__all__ = ["HEAD_ID", "LedgerTables", "define_ledger_tables", "last_leaf"]

HEAD_ID = 1
"""The id of the single ``ledger_head`` row."""

# SQLite makes an INTEGER PRIMARY KEY the rowid; BIGINT elsewhere.
_Index = BigInteger().with_variant(Integer(), "sqlite")


@dataclass(frozen=True)
class LedgerTables:
    """The four ledger tables, registered on one ``MetaData``."""

    entries: Table
    nodes: Table
    checkpoints: Table
    head: Table


def define_ledger_tables(metadata: MetaData) -> LedgerTables:
    """Define the ledger tables on ``metadata`` (call once per metadata)."""
    entries = Table(
        "ledger_entries",
        metadata,
        Column("index", _Index, primary_key=True, autoincrement=False),
        Column("entry", LargeBinary, nullable=False),
        Column("leaf_hash", LargeBinary(HASH_SIZE), nullable=False),
    )
    nodes = Table(
        "ledger_nodes",
        metadata,
        Column("last_leaf", BigInteger, primary_key=True, autoincrement=False),
        Column("level", SmallInteger, primary_key=True, autoincrement=False),
        Column("index", BigInteger, nullable=False),
        Column("hash", LargeBinary(HASH_SIZE), nullable=False),
        CheckConstraint('last_leaf = (("index" + 1) << level) - 1', name="last_leaf"),
        sqlite_with_rowid=False,
    )
    checkpoints = Table(
        "ledger_checkpoints",
        metadata,
        Column("size", BigInteger, primary_key=True, autoincrement=False),
        Column("root", LargeBinary(HASH_SIZE), nullable=False),
        Column("note", Text, nullable=False),
        Column("signed_at", DateTime(timezone=True), nullable=False),
        Column("seq", BigInteger, nullable=False),
    )
    head = Table(
        "ledger_head",
        metadata,
        Column("id", SmallInteger, primary_key=True, autoincrement=False),
        Column("size", BigInteger, nullable=False),
        Column("last_leaf_hash", LargeBinary(HASH_SIZE), nullable=True),
        Column("checkpoint_seq", BigInteger, nullable=False, server_default=text("0")),
        CheckConstraint(f"id = {HEAD_ID}", name="single_row"),
        CheckConstraint("size >= 0", name="size"),
    )
    return LedgerTables(entries=entries, nodes=nodes, checkpoints=checkpoints, head=head)


def last_leaf(key: Node) -> int:
    """The index of the last leaf covered by the perfect subtree ``key``."""
    level, index = key
    return ((index + 1) << level) - 1
