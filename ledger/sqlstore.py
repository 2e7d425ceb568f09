"""SQLAlchemy storage for the ledger, inside the caller's transaction.

With ``ledger.sqlschema`` (the tables) and ``ledger.sqldriver`` (compiled
statements on the DB-API cursor), the only part of ``ledger`` that imports
SQLAlchemy. It implements ``ledger.storage.LedgerStorage`` on a ``Session``
and never commits: the ledger entry and the action it records commit (or
roll back) together.

Schema: see ``ledger.sqlschema`` (tables and why they have that shape).

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
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement, Executable

from ledger import sqlpipeline
from ledger.errors import ConflictError, StorageError
from ledger.merkle import HASH_SIZE, Node, frontier, leaf_hash
from ledger.sqldriver import Inserter, compiled, dbapi
from ledger.sqlschema import HEAD_ID, LedgerTables, define_ledger_tables, last_leaf
from ledger.storage import Head, StoredCheckpoint
from ledger.treecache import TreeCache

__all__ = ["LedgerTables", "SqlStorage", "define_ledger_tables", "last_leaf"]

STREAM_BATCH = 10_000
"""Rows fetched per round trip when streaming entries, nodes and checkpoints."""
LOOKUP_CHUNK = 200
"""Keys per node lookup query (SQLite's parser limits expression depth to 1,000)."""


class SqlStorage:
    """``LedgerStorage`` over a SQLAlchemy ``Session``; never commits."""

    def __init__(self, session: Session, tables: LedgerTables,
                 cache: TreeCache | None = None) -> None:
        """Use ``session``'s current transaction (one is begun on first use).

        ``cache``, shared by the sessions of one database, serves proofs from
        memory (:meth:`committed_tree`).
        """
        self._session = session
        self._t = tables
        self._statements = _STATEMENTS.setdefault(id(tables), {})
        self._cache = cache
        self._frontier: tuple[int, dict[Node, bytes]] | None = None

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

    def head_size(self) -> int:
        """The head's size, read without taking its lock (committed, at ``READ COMMITTED``)."""
        h = self._t.head.c
        size = self._conn().execute(select(h.size).where(h.id == HEAD_ID)).scalar()
        if size is None:
            raise StorageError("ledger head row is missing (database not migrated?)")
        return int(size)

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

    def node_hashes_ending_between(self, first: int, last: int) -> Iterator[bytes]:
        """Hashes of the nodes whose last leaf is in ``first..last``, in order (a key range)."""
        # Built once: a verifier asks for every chunk, and building costs more than SQLite.
        stmt = self._statements.get(("node_hashes_ending_between", 0))
        if stmt is None:
            c = self._t.nodes.c
            stmt = self._cached("node_hashes_ending_between", select(c.hash).where(
                c.last_leaf >= bindparam("first"), c.last_leaf <= bindparam("last"),
            ).order_by(c.last_leaf, c.level))
        for batch in self._batches(stmt, {"first": first, "last": last}):
            yield from map(_first, batch)

    def nodes(self, keys: Sequence[Node]) -> Mapping[Node, bytes]:
        """Hashes of the stored nodes among ``keys``, one query per 200 keys.

        The frontier of the size :meth:`lock_head` just locked is answered from
        what that lock read with it (the head cannot move while it is held).
        """
        wanted = sorted(set(keys))
        if self._frontier is not None and set(wanted) <= set(frontier(self._frontier[0])):
            held = self._frontier[1]
            return {key: held[key] for key in wanted if key in held}
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
        sql = compiled(conn, stmt)
        cursor = dbapi(conn).cursor()
        try:
            cursor.execute(sql.string, sql.params([params])[0])
            return list(cursor.fetchall())
        finally:
            cursor.close()

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
        sql = compiled(conn, stmt)
        raw = dbapi(conn)
        if conn.dialect.name == "postgresql":
            cursor = raw.cursor(name=f"ledger_stream_{next(_CURSOR_IDS)}")
        else:
            cursor = raw.cursor()
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
            stored = StoredCheckpoint(size=int(found), root=bytes(root_hash), note=str(note))
            if self._cache is not None and not self._wrote_checkpoints():
                # Not this transaction's own: committed, so it can never go away.
                self._cache.remember(stored)
            return stored
        return None

    def committed_tree(self, size: int) -> TreeCache | None:
        """The cache, if it holds the committed tree of ``size`` leaves (grown on demand).

        Only for a size whose checkpoint :meth:`checkpoint_at` found committed;
        growing reads the new nodes in one primary-key range scan, and the
        cache checks them against that checkpoint's root before using them.
        """
        cache = self._cache
        if cache is None or cache.signed_root(size) is None:
            return None
        if not cache.covers(size):
            start, low = cache.size, cache.level_for(size)
            c = self._t.nodes.c
            stmt = self._cached("node_range", select(c.level, c.index, c.hash).where(
                c.last_leaf >= bindparam("start"), c.last_leaf < bindparam("stop"),
                c.level >= bindparam("low")).order_by(c.last_leaf, c.level))
            params = {"start": start, "stop": size, "low": low}
            rows = itertools.chain.from_iterable(self._batches(stmt, params))
            if not cache.extend(rows, size, self.nodes):
                return None
        return cache

    def _wrote_checkpoints(self) -> bool:
        """Whether this transaction stored or changed a checkpoint (not yet committed)."""
        return self._session.info.get(_CHECKPOINT_WRITER) is self._session.get_transaction()

    def _writing_checkpoints(self) -> None:
        self._session.info[_CHECKPOINT_WRITER] = self._session.get_transaction()

    # -- writes --------------------------------------------------------------

    def lock_head(self) -> Head:
        """Lock the head row until the transaction ends and return the head.

        On PostgreSQL the frontier nodes come in the same round trip
        (``ledger.sqlpipeline``) and serve the append's :meth:`nodes` lookup.
        """
        stmt = self._head_statements()[0]
        conn = self._conn()
        self._frontier = None
        if conn.dialect.name == "postgresql":
            row, found = sqlpipeline.lock_with_frontier(
                conn, cast(ClauseElement, stmt), {"id": HEAD_ID}, self._cached_pg("frontier"),
                sqlpipeline.frontier_params(HEAD_ID))
        else:
            # Through SQLAlchemy, not the raw cursor: a lock timeout or a
            # serialization failure must reach callers as SQLAlchemy's errors.
            row, found = conn.execute(stmt, {"id": HEAD_ID}).first(), None
        if row is None:
            raise StorageError("ledger head row is missing (database not migrated?)")
        size, last = row
        if found is not None:
            self._frontier = (int(size), {(int(level), int(index)): bytes(value)
                                          for level, index, value in found})
        return Head(size=int(size), last_leaf_hash=None if last is None else bytes(last))

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
        node_rows = _node_rows(nodes, first_index, new_size)
        # Tuples in table column order: the driver's executemany takes them as they are.
        entry_rows = list(zip(range(first_index, new_size), entries,
                              _leaf_hashes(node_rows, entries, first_index), strict=True))
        conn = self._conn()
        self._frontier = None
        if conn.dialect.name == "postgresql":
            self._append_in_one_statement(conn, first_index, new_size, entry_rows, node_rows)
            return
        params = {"head_id": HEAD_ID, "first": first_index, "new_size": new_size,
                  "last": entry_rows[-1][2]}
        moved = conn.execute(self._head_statements()[1], params)
        if moved.rowcount != 1:
            raise ConflictError(f"ledger head is no longer at size {first_index}")
        # The driver's own exception, since the rows bypass SQLAlchemy.
        driver_error = getattr(conn.dialect.dbapi, "IntegrityError", IntegrityError)
        entries_inserter, nodes_inserter = self._inserters()
        try:
            # Straight to the DB-API cursor with plain tuples: SQLAlchemy's
            # per-row parameter processing cost more than the inserts.
            cursor = dbapi(conn).cursor()
            try:
                entries_inserter.run(conn, cursor, entry_rows)
                nodes_inserter.run(conn, cursor, node_rows)
            finally:
                cursor.close()
        except (IntegrityError, driver_error) as exc:
            raise ConflictError(f"ledger rows from index {first_index} already exist") from exc

    def _append_in_one_statement(self, conn: Connection, first_index: int, new_size: int,
                                 entry_rows: list[tuple[Any, ...]],
                                 node_rows: list[tuple[Any, ...]]) -> None:
        """PostgreSQL: the head's compare-and-swap and every row in one round trip."""
        params = sqlpipeline.append_params(HEAD_ID, first_index, new_size, entry_rows[-1][2],
                                           entry_rows, node_rows)
        try:
            (moved,) = sqlpipeline.run_one(conn, self._cached_pg("append"), params)
        except IntegrityError as exc:
            raise ConflictError(f"ledger rows from index {first_index} already exist") from exc
        if moved != 1:
            raise ConflictError(f"ledger head is no longer at size {first_index}")

    def _cached_pg(self, name: str) -> ClauseElement:
        """PostgreSQL's lock-time statements (``ledger.sqlpipeline``), built once per tables."""
        stmt = self._statements.get((name, 0))
        if stmt is None:
            build = {"frontier": sqlpipeline.frontier_statement,
                     "append": sqlpipeline.append_statement}[name]
            stmt = self._statements[(name, 0)] = build(self._t)
        return stmt

    def _head_statements(self) -> tuple[Executable, Executable]:
        """The head's lock and compare-and-swap move, built once per tables (hot: every append)."""
        found = _HEAD_STATEMENTS.get(id(self._t))
        if found is None or found[2] is not self._t.head:
            h = self._t.head.c
            lock = select(h.size, h.last_leaf_hash).where(h.id == bindparam("id")).with_for_update()
            move = (update(self._t.head)
                    .where(h.id == bindparam("head_id"), h.size == bindparam("first"))
                    .values(size=bindparam("new_size"), last_leaf_hash=bindparam("last")))
            found = _HEAD_STATEMENTS[id(self._t)] = (lock, move, self._t.head)
        return found[0], found[1]

    def _inserters(self) -> tuple[Inserter, Inserter]:
        found = _INSERTERS.get(id(self._t))
        if found is None or found[0].table is not self._t.entries:
            found = _INSERTERS[id(self._t)] = (Inserter(self._t.entries), Inserter(self._t.nodes))
        return found

    def add_checkpoint(self, checkpoint: StoredCheckpoint) -> None:
        """Store ``checkpoint`` if it is larger than the latest one, else ``ConflictError``.

        Takes the head lock itself, so the comparison and the insert cannot
        interleave with another checkpointer; the primary key on size backs it.
        """
        head = self.lock_head()
        self._writing_checkpoints()
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
        self._writing_checkpoints()
        result = self._conn().execute(
            update(self._t.checkpoints).where(c.size == size).values(note=note)
        )
        if result.rowcount != 1:
            raise StorageError(f"no checkpoint of size {size}")


_STATEMENTS: dict[int, dict[tuple[str, int], ClauseElement]] = {}
"""Node lookups (by key count) and reads per ``LedgerTables``, built once per process."""
_INSERTERS: dict[int, tuple[Inserter, Inserter]] = {}
_HEAD_STATEMENTS: dict[int, tuple[Executable, Executable, Table]] = {}
"""The entries and nodes inserters per ``LedgerTables``."""
_CURSOR_IDS = itertools.count()
_CHECKPOINT_WRITER = "cadena.ledger.checkpoint_writer"
"""``Session.info`` key: the transaction that last wrote checkpoints through a storage."""
_first = itemgetter(0)
_LEVEL = itemgetter(1)


def _node_rows(
    nodes: Sequence[tuple[Node, bytes]], first_index: int, new_size: int
) -> list[tuple[Any, ...]]:
    """Rows for the nodes table (column order), checked to be completed by this append."""
    rows = [(((index + 1) << level) - 1, level, index, value) for (level, index), value in nodes]
    if rows:
        covered = list(map(_first, rows))
        # Appending leaves [first, new_size) completes only nodes ending in it.
        if min(covered) < first_index or max(covered) >= new_size or \
                any(map(HASH_SIZE.__ne__, map(len, map(itemgetter(3), rows)))):
            bad = next(r for r in rows if not first_index <= r[0] < new_size or
                       len(r[3]) != HASH_SIZE)
            raise StorageError(f"node {(bad[1], bad[2])} is not completed by this append")
    return rows


def _leaf_hashes(rows: list[tuple[Any, ...]], entries: Sequence[bytes],
                 first_index: int) -> list[bytes]:
    """The leaf hash of every entry: from the level-0 node rows when they are all there."""
    leaves = [row for row in rows if row[1] == 0]
    if list(map(itemgetter(2), leaves)) == list(range(first_index, first_index + len(entries))):
        return list(map(itemgetter(3), leaves))
    given = {row[2]: row[3] for row in leaves}
    return [given.get(i) or leaf_hash(raw) for i, raw in enumerate(entries, first_index)]
