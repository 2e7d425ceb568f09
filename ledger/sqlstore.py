"""SQLAlchemy storage for the ledger, inside the caller's transaction.

This is the only module of ``ledger`` that imports SQLAlchemy. It implements
``ledger.storage.LedgerStorage`` on a ``Session`` and never commits: the
ledger entry and the action it records commit (or roll back) together.

Schema (created by the Alembic revision ``0001_ledger``)::

    ledger_entries      index (pk), entry (the exact bytes), leaf_hash
    ledger_nodes        last_leaf, level (pk), index, hash
    ledger_checkpoints  size (pk), root, note, signed_at
    ledger_head         id = 1 (single row), size, last_leaf_hash

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
  lock and learning where to append is one query.

Locking: ``lock_head()`` is ``SELECT ... FOR UPDATE`` on the head row, which
serializes appenders and checkpointers across processes on PostgreSQL until
the transaction ends. On SQLite every transaction already starts with
``BEGIN IMMEDIATE`` (``app/db.py``), which takes the database write lock, and
SQLAlchemy leaves ``FOR UPDATE`` out. Independently of the lock, ``append``
moves the head with a compare-and-swap ``UPDATE ... WHERE size = :first``, and
``add_checkpoint`` takes the lock itself before comparing sizes, so a caller
that forgot the lock gets ``ConflictError`` rather than a fork.

Readers: for a consistent view across several queries (the verifier), run the
session at ``REPEATABLE READ`` on PostgreSQL; a SQLite transaction is a
snapshot already.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any, cast

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
    and_,
    bindparam,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from ledger.errors import ConflictError, StorageError
from ledger.merkle import HASH_SIZE, Node, leaf_hash
from ledger.storage import Head, StoredCheckpoint

__all__ = ["LedgerTables", "SqlStorage", "define_ledger_tables"]

HEAD_ID = 1
STREAM_BATCH = 10_000
"""Rows fetched per round trip when streaming entries, nodes and checkpoints."""
LOOKUP_CHUNK = 200
"""Keys per node lookup query (SQLite's parser limits expression depth to 1,000)."""

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
    )
    head = Table(
        "ledger_head",
        metadata,
        Column("id", SmallInteger, primary_key=True, autoincrement=False),
        Column("size", BigInteger, nullable=False),
        Column("last_leaf_hash", LargeBinary(HASH_SIZE), nullable=True),
        CheckConstraint(f"id = {HEAD_ID}", name="single_row"),
        CheckConstraint("size >= 0", name="size"),
    )
    return LedgerTables(entries=entries, nodes=nodes, checkpoints=checkpoints, head=head)


def last_leaf(key: Node) -> int:
    """The index of the last leaf covered by the perfect subtree ``key``."""
    level, index = key
    return ((index + 1) << level) - 1


class SqlStorage:
    """``LedgerStorage`` over a SQLAlchemy ``Session``; never commits."""

    def __init__(self, session: Session, tables: LedgerTables) -> None:
        """Use ``session``'s current transaction (one is begun on first use)."""
        self._session = session
        self._t = tables
        self._statements = _STATEMENTS.setdefault(id(tables), {})

    def _conn(self) -> Connection:
        return self._session.connection()

    # -- reads ---------------------------------------------------------------

    def size(self) -> int:
        """Number of entries stored (no lock taken).

        The head's size, or more if entry rows exist beyond it: rows that
        were written behind the head's back must still reach the verifier.
        """
        head = self._t.head.c
        entries = self._t.entries.c
        stmt = select(
            select(head.size).where(head.id == HEAD_ID).scalar_subquery(),
            select(func.max(entries.index)).scalar_subquery(),
        )
        head_size, last_index = self._conn().execute(stmt).one()
        if head_size is None:
            raise StorageError("ledger head row is missing (database not migrated?)")
        return max(int(head_size), -1 if last_index is None else int(last_index) + 1)

    def entries(self, start: int, stop: int) -> Iterator[bytes]:
        """Entry bytes for ``start <= index < stop`` in index order, streamed in batches."""
        c = self._t.entries.c
        stmt = (
            select(c.entry)
            .where(c.index >= bindparam("start"), c.index < bindparam("stop"))
            .order_by(c.index)
        )
        for batch in self._batches(self._cached("entries", stmt), {"start": start, "stop": stop}):
            yield from map(_first, batch)  # C-level per row: the verifier reads every one

    def iter_nodes(self) -> Iterator[tuple[Node, bytes]]:
        """Every stored node, ordered by the last leaf it covers, then by level."""
        c = self._t.nodes.c
        stmt = select(c.level, c.index, c.hash).order_by(c.last_leaf, c.level)
        for batch in self._batches(self._cached("iter_nodes", stmt), {}):
            levels, indices, values = zip(*batch, strict=True)
            yield from zip(zip(levels, indices, strict=True), values, strict=True)

    def iter_node_hashes(self) -> Iterator[bytes]:
        """Every stored node's hash, in :meth:`iter_nodes` order (a primary-key scan)."""
        c = self._t.nodes.c
        stmt = select(c.hash).order_by(c.last_leaf, c.level)
        for batch in self._batches(self._cached("iter_node_hashes", stmt), {}):
            yield from map(_first, batch)

    def nodes(self, keys: Sequence[Node]) -> Mapping[Node, bytes]:
        """Hashes of the stored nodes among ``keys``, one query per 200 keys."""
        wanted = sorted(set(keys))
        found: dict[Node, bytes] = {}
        for start in range(0, len(wanted), LOOKUP_CHUNK):
            chunk = wanted[start : start + LOOKUP_CHUNK]
            params: dict[str, int] = {}
            for n, (level, index) in enumerate(chunk):
                params[f"l{n}"], params[f"v{n}"] = ((index + 1) << level) - 1, level
            for level, index, value in self._rows(self._node_lookup(len(chunk)), params):
                found[(int(level), int(index))] = bytes(value)
        return found

    def _rows(self, stmt: ClauseElement, params: Mapping[str, Any]) -> list[Any]:
        """All rows of a small query, through the DB-API cursor.

        Proof requests make two such queries (the checkpoint, the nodes);
        SQLAlchemy's execution and result layers cost more than both.
        """
        conn = self._conn()
        sql = _compiled(conn, stmt)
        cursor = _dbapi(conn).cursor()
        try:
            cursor.execute(sql.string, sql.params([params])[0])
            return list(cursor.fetchall())
        finally:
            cursor.close()

    def _insert(self, table: Table) -> ClauseElement:
        key = ("insert " + table.name, 0)
        stmt = self._statements.get(key)
        if stmt is None:
            stmt = self._statements[key] = insert(table)
        return stmt

    def _node_lookup(self, count: int) -> ClauseElement:
        # An OR of primary-key equalities: both SQLite and PostgreSQL turn it
        # into index probes, unlike SQLite's row-value IN (VALUES ...) scan.
        # Built and compiled once per key count: building SQLAlchemy
        # expressions per call cost more than the query itself.
        key = ("lookup", count)
        stmt = self._statements.get(key)
        if stmt is None:
            c = self._t.nodes.c
            pairs = (
                and_(c.last_leaf == bindparam(f"l{n}"), c.level == bindparam(f"v{n}"))
                for n in range(count)
            )
            stmt = select(c.level, c.index, c.hash).where(or_(*pairs))
            self._statements[key] = stmt
        return stmt

    def checkpoints(self) -> Iterator[StoredCheckpoint]:
        """Every stored checkpoint by ascending size, streamed."""
        c = self._t.checkpoints.c
        stmt = select(c.size, c.root, c.note).order_by(c.size)
        for batch in self._batches(self._cached("checkpoints", stmt), {}):
            for size, root_hash, note in batch:
                yield StoredCheckpoint(size=int(size), root=bytes(root_hash), note=str(note))

    def _batches(self, stmt: ClauseElement, params: Mapping[str, Any]) -> Iterator[Sequence[Any]]:
        """Row batches of ``stmt`` straight from the driver, without per-row wrappers.

        The verifier reads every entry and node once: SQLAlchemy's result
        rows cost more than SQLite's reads, so the rows come from a plain
        DB-API cursor (a named, server-side one on PostgreSQL, so a million
        rows are never held in memory). It is closed when the consumer stops
        early or drops the iterator, not left to the garbage collector.
        """
        conn = self._conn()
        sql = _compiled(conn, stmt)
        dbapi = _dbapi(conn)
        if conn.dialect.name == "postgresql":
            cursor = dbapi.cursor(name=f"ledger_stream_{next(_CURSOR_IDS)}")
        else:
            cursor = dbapi.cursor()
        try:
            cursor.execute(sql.string, sql.params([params])[0])
            while batch := cursor.fetchmany(STREAM_BATCH):
                yield batch
        finally:
            cursor.close()

    def _cached(self, name: str, stmt: ClauseElement) -> ClauseElement:
        return self._statements.setdefault((name, 0), stmt)

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        """The stored checkpoint with the largest size, if any."""
        c = self._t.checkpoints.c
        row = (
            self._conn()
            .execute(select(c.size, c.root, c.note).order_by(c.size.desc()).limit(1))
            .first()
        )
        if row is None:
            return None
        return StoredCheckpoint(size=int(row.size), root=bytes(row.root), note=str(row.note))

    def checkpoint_at(self, size: int) -> StoredCheckpoint | None:
        """The stored checkpoint of exactly ``size`` leaves, if any (a primary-key lookup)."""
        c = self._t.checkpoints.c
        stmt = self._cached(
            "checkpoint_at", select(c.size, c.root, c.note).where(c.size == bindparam("size"))
        )
        for found, root_hash, note in self._rows(stmt, {"size": size}):
            return StoredCheckpoint(size=int(found), root=bytes(root_hash), note=str(note))
        return None

    # -- writes --------------------------------------------------------------

    def lock_head(self) -> Head:
        """Lock the head row until the transaction ends and return the head."""
        c = self._t.head.c
        row = (
            self._conn()
            .execute(select(c.size, c.last_leaf_hash).where(c.id == HEAD_ID).with_for_update())
            .first()
        )
        if row is None:
            raise StorageError("ledger head row is missing (database not migrated?)")
        last = None if row.last_leaf_hash is None else bytes(row.last_leaf_hash)
        return Head(size=int(row.size), last_leaf_hash=last)

    def append(
        self, first_index: int, entries: Sequence[bytes], nodes: Sequence[tuple[Node, bytes]]
    ) -> None:
        """Store ``entries`` from ``first_index`` on and the nodes they complete.

        The head moves by compare-and-swap first: if another writer appended
        since ``first_index`` was read, ``ConflictError`` and nothing is written.
        """
        if not entries:
            if nodes:
                raise StorageError("nodes given without entries")
            return
        new_size = first_index + len(entries)
        node_rows, leaves = _node_rows(nodes, first_index, new_size)
        # Tuples in table column order: the driver's executemany takes them as they are.
        entry_rows = [
            (i, raw, leaves.get(i) or leaf_hash(raw)) for i, raw in enumerate(entries, first_index)
        ]
        conn = self._conn()
        h = self._t.head.c
        moved = conn.execute(
            update(self._t.head)
            .where(h.id == HEAD_ID, h.size == first_index)
            .values(size=new_size, last_leaf_hash=entry_rows[-1][2])
        )
        if moved.rowcount != 1:
            raise ConflictError(f"ledger head is no longer at size {first_index}")
        # The driver's own exception, since the rows bypass SQLAlchemy.
        driver_error = getattr(conn.dialect.dbapi, "IntegrityError", IntegrityError)
        try:
            # Straight to the DB-API cursor's executemany with plain tuples:
            # SQLAlchemy's per-row parameter processing cost more than the inserts.
            cursor = _dbapi(conn).cursor()
            try:
                for table, rows in ((self._t.entries, entry_rows), (self._t.nodes, node_rows)):
                    if rows:
                        sql = _compiled(conn, self._insert(table))
                        cursor.executemany(sql.string, sql.column_rows(table, rows))
            finally:
                cursor.close()
        except (IntegrityError, driver_error) as exc:
            raise ConflictError(f"ledger rows from index {first_index} already exist") from exc

    def add_checkpoint(self, checkpoint: StoredCheckpoint) -> None:
        """Store ``checkpoint`` if it is larger than the latest one, else ``ConflictError``.

        Takes the head lock itself, so the comparison and the insert cannot
        interleave with another checkpointer; the primary key on size backs it.
        """
        head = self.lock_head()
        if checkpoint.size > head.size:
            raise StorageError(
                f"checkpoint size {checkpoint.size} exceeds the ledger size {head.size}"
            )
        c = self._t.checkpoints.c
        latest = self._conn().execute(select(func.max(c.size))).scalar_one_or_none()
        if latest is not None and checkpoint.size <= latest:
            raise ConflictError(
                f"checkpoint size {checkpoint.size} is not larger than the latest ({latest})"
            )
        row = {
            "size": checkpoint.size,
            "root": checkpoint.root,
            "note": checkpoint.note,
            "signed_at": datetime.now(UTC),
        }
        try:
            self._conn().execute(insert(self._t.checkpoints), [row])
        except IntegrityError as exc:
            raise ConflictError(f"a checkpoint of size {checkpoint.size} exists") from exc

    def update_checkpoint_note(self, size: int, note: str) -> None:
        """Replace the note of the checkpoint at ``size`` (to add cosignatures)."""
        c = self._t.checkpoints.c
        result = self._conn().execute(
            update(self._t.checkpoints).where(c.size == size).values(note=note)
        )
        if result.rowcount != 1:
            raise StorageError(f"no checkpoint of size {size}")


_STATEMENTS: dict[int, dict[tuple[str, int], ClauseElement]] = {}
"""Inserts and node lookups (by key count) per ``LedgerTables``, built once per process."""


@dataclass(frozen=True)
class _DriverSql:
    """A statement compiled for one dialect, run through ``exec_driver_sql``."""

    string: str
    names: tuple[str, ...] | None  # parameter order for positional paramstyles

    def column_rows(self, table: Table, rows: list[tuple[Any, ...]]) -> list[Any]:
        """Driver parameters for an insert of ``rows`` given in ``table``'s column order."""
        columns = tuple(column.name for column in table.columns)
        if self.names == columns:
            return rows
        return [dict(zip(columns, row, strict=True)) for row in rows]

    def params(self, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
        """Driver parameters for ``rows`` (tuples or dicts, as the paramstyle wants)."""
        if self.names is None:
            return list(rows)
        names = self.names
        return [tuple(row[name] for name in names) for row in rows]


_CURSOR_IDS = itertools.count()
_first = itemgetter(0)


def _dbapi(conn: Connection) -> Any:
    """The DB-API connection under ``conn`` (inside the session's transaction)."""
    dbapi = conn.connection.dbapi_connection
    if dbapi is None:
        raise StorageError("the session's connection is closed")
    return dbapi

_COMPILED: dict[tuple[str, int], tuple[ClauseElement, _DriverSql]] = {}


def _compiled(conn: Connection, stmt: ClauseElement) -> _DriverSql:
    key = (conn.dialect.name, id(stmt))
    hit = _COMPILED.get(key)
    if hit is not None and hit[0] is stmt:
        return hit[1]
    compiled = cast(SQLCompiler, stmt.compile(dialect=conn.dialect))
    positional = compiled.positiontup if compiled.positional else None
    sql = _DriverSql(compiled.string, tuple(positional) if positional is not None else None)
    _COMPILED[key] = (stmt, sql)
    return sql


def _node_rows(
    nodes: Sequence[tuple[Node, bytes]], first_index: int, new_size: int
) -> tuple[list[tuple[Any, ...]], dict[int, bytes]]:
    """Rows for the nodes table (column order), and the leaf hashes among the nodes."""
    rows: list[tuple[Any, ...]] = []
    leaves: dict[int, bytes] = {}
    for (level, index), value in nodes:
        if level == 0:
            leaves[index] = value
        covered = ((index + 1) << level) - 1  # last_leaf(), inlined: this loop is hot
        # Appending leaves [first, new_size) completes only nodes ending in it.
        if not first_index <= covered < new_size or len(value) != HASH_SIZE:
            raise StorageError(f"node {(level, index)} is not completed by this append")
        rows.append((covered, level, index, value))
    return rows, leaves
