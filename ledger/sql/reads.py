"""The reading half of the ledger's SQLAlchemy storage (``ledger.sql.store``).

:class:`SqlReads` holds the session, the tables and the statements built once
per process, and every read: sizes, entries, nodes, checkpoints, and the
shared tree cache's growth. ``ledger.sql.store.SqlStorage`` adds the writes
(the head lock, appends, checkpoints). Nothing here takes a lock or writes.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import and_, bindparam, func, literal_column, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement, Select

from ledger.errors import StorageError
from ledger.format.merkle import Node, frontier
from ledger.sql.driver import compiled, dbapi
from ledger.sql.pipeline import PENDING, send_pending_append
from ledger.sql.schema import HEAD_ID, LedgerTables
from ledger.store.storage import Head, StoredCheckpoint
from ledger.store.treecache import TreeCache

STREAM_BATCH = 10_000
"""Rows fetched per round trip when streaming entries, nodes and checkpoints."""
LOOKUP_CHUNK = 200
"""Keys per node lookup query (SQLite's parser limits expression depth to 1,000)."""


class SqlReads:
    """The reads of ``LedgerStorage`` over a SQLAlchemy ``Session``."""

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
        """The frontier of the head :meth:`lock_head` locked: (its size, the nodes' hashes)."""
        self._locked_size: int | None = None
        """The size of the head locked for an append that has not been written yet."""

    def _conn(self) -> Connection:
        if PENDING in self._session.info:  # an append waiting for the COMMIT goes first
            send_pending_append(self._session)
        return self._session.connection()

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

    def head(self) -> Head:
        """The head row as stored, with entry ``size - 1``'s stored leaf hash (no lock)."""
        row = self._conn().execute(head_select(self._t).where(
            self._t.head.c.id == HEAD_ID)).first()
        if row is None:
            raise StorageError("ledger head row is missing (database not migrated?)")
        return head_from_row(row)

    def stored_leaf_hashes(self, start: int, stop: int) -> Iterator[tuple[bytes, bytes]]:
        """``(entry bytes, stored leaf_hash column)`` for ``start <= index < stop``, streamed."""
        c = self._t.entries.c
        stmt = self._cached("stored_leaf_hashes", select(c.entry, c.leaf_hash).where(
            c.index >= bindparam("start"), c.index < bindparam("stop")).order_by(c.index))
        for batch in self._batches(stmt, {"start": start, "stop": stop}):
            yield from batch  # both drivers give bytes for binary columns

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
        what that lock read with it, or from the process's last append (ADR
        0046); the head cannot move while it is held.
        """
        if self._frontier is not None:  # its hashes, if it has them all (the append's keys)
            held = self._frontier[1]
            if all(key in held for key in keys):
                return {key: held[key] for key in keys}
        wanted = sorted(set(keys))
        found: dict[Node, bytes] = {}
        for start in range(0, len(wanted), LOOKUP_CHUNK):
            chunk = wanted[start : start + LOOKUP_CHUNK]
            params: dict[str, int] = {}
            for n, (level, index) in enumerate(chunk):
                params[f"l{n}"], params[f"v{n}"] = ((index + 1) << level) - 1, level
            for level, index, value in self._rows(self._node_lookup(len(chunk)), params):
                found[(int(level), int(index))] = bytes(value)
        locked = self._locked_size
        if locked is not None and self._frontier is None and set(wanted) == set(frontier(locked)):
            self._frontier = (locked, dict(found))  # the append's: it keeps what it leaves
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
        stmt = select(c.size, c.root, c.note, c.seq).order_by(c.size)
        for batch in self._batches(self._cached("checkpoints", stmt), {}):
            for size, root_hash, note, seq in batch:
                yield StoredCheckpoint(size=int(size), root=bytes(root_hash), note=str(note),
                                       seq=int(seq))

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
            .execute(select(c.size, c.root, c.note, c.seq).order_by(c.size.desc()).limit(1))
            .first()
        )
        if row is None:
            return None
        return StoredCheckpoint(size=int(row.size), root=bytes(row.root), note=str(row.note),
                                seq=int(row.seq))

    def checkpoint_at(self, size: int) -> StoredCheckpoint | None:
        """The stored checkpoint of exactly ``size`` leaves, if any (a primary-key lookup)."""
        c = self._t.checkpoints.c
        stmt = self._cached(
            "checkpoint_at",
            select(c.size, c.root, c.note, c.seq).where(c.size == bindparam("size")))
        for found, root_hash, note, seq in self._rows(stmt, {"size": size}):
            stored = StoredCheckpoint(size=int(found), root=bytes(root_hash), note=str(note),
                                      seq=int(seq))
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


def head_select(tables: LedgerTables) -> Select[Any]:
    """The head's columns with entry ``size - 1``'s stored leaf hash, in one statement.

    The append path compares the two (``Ledger.append_many``): one primary-key
    probe more in the statement that takes the lock, not another round trip.
    """
    h, e = tables.head.c, tables.entries.c
    # A literal, not a bound 1: the PostgreSQL pipeline sends only the named parameters.
    stored_last = select(e.leaf_hash).where(
        e.index == h.size - literal_column("1")).scalar_subquery()
    return select(h.size, h.last_leaf_hash, stored_last, h.checkpoint_seq)


def head_from_row(row: Sequence[Any]) -> Head:
    """A :class:`Head` from a :func:`head_select` row."""
    size, last, stored_last, seq = row
    return Head(size=int(size), last_leaf_hash=None if last is None else bytes(last),
                entry_leaf_hash=None if stored_last is None else bytes(stored_last),
                checkpoint_seq=int(seq))


_STATEMENTS: dict[int, dict[tuple[str, int], ClauseElement]] = {}
"""Node lookups (by key count) and reads per ``LedgerTables``, built once per process."""
_CURSOR_IDS = itertools.count()
_CHECKPOINT_WRITER = "cadena.ledger.checkpoint_writer"
"""``Session.info`` key: the transaction that last wrote checkpoints through a storage."""
_first = itemgetter(0)
