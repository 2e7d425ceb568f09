"""SQLAlchemy storage for the ledger, inside the caller's transaction.

With ``ledger.sql.reads`` (its reads), ``ledger.sql.schema`` (the tables),
``ledger.sql.pipeline`` (PostgreSQL's append path) and ``ledger.sql.driver``
(compiled statements on the DB-API cursor), the only part of ``ledger`` that
imports SQLAlchemy. It implements ``ledger.store.storage.LedgerStorage`` on a ``Session``
and never commits: the ledger entry and the action it records commit (or
roll back) together.

Schema: see ``ledger.sql.schema`` (tables and why they have that shape).

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

import functools
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement, Executable

from ledger.errors import ConflictError, StorageError
from ledger.format.merkle import HASH_SIZE, Node, frontier, leaf_hash
from ledger.sql import pipeline as sqlpipeline
from ledger.sql.driver import Inserter, compiled, dbapi
from ledger.sql.reads import SqlReads, head_from_row, head_select
from ledger.sql.schema import HEAD_ID, LedgerTables, define_ledger_tables, last_leaf
from ledger.store.storage import Head, StoredCheckpoint
from ledger.store.treecache import LastAppend, TreeCache

__all__ = ["LedgerTables", "SqlReads", "SqlStorage", "define_ledger_tables", "last_leaf"]


class SqlStorage(SqlReads):
    """``LedgerStorage`` over a SQLAlchemy ``Session``; never commits.

    The reads are :class:`ledger.sql.reads.SqlReads`'; the writes are here.
    """

    def __init__(self, session: Session, tables: LedgerTables,
                 cache: TreeCache | None = None, *, append_at_commit: bool = False) -> None:
        """As :class:`SqlReads`; ``append_at_commit``: the session's commit sends appends.

        Only for a session whose commit takes the waiting append
        (``ledger.sql.pipeline.take_pending_append``) and sends it with
        ``COMMIT``, as the service's unit of work does; on PostgreSQL the
        append's statement then waits for it (anything run on the session
        before sends it first). SQLite appends at once either way.
        """
        super().__init__(session, tables, cache)
        self._append_at_commit = append_at_commit

    def lock_head(self) -> Head:
        """Lock the head row until the transaction ends and return the head.

        The append's frontier nodes (:meth:`nodes`) come from this process's
        last append (``ledger.store.treecache.LastAppend``) when the locked head
        is the one it left or grew from it; else from storage. On PostgreSQL
        they are read in the lock's round trip (:meth:`_lock_on_postgresql`).
        """
        stmt = cast(ClauseElement, self._head_statements()[0])
        conn = self._conn()
        self._frontier = None
        last = self._cache.last_append() if self._cache is not None else None
        if conn.dialect.name == "postgresql":
            row, known, stored_last = self._lock_on_postgresql(conn, stmt, last)
            if row is not None:
                row = (row[0], row[1], stored_last, row[3])
                if known is not None:
                    self._frontier = (int(row[0]), known)
        else:
            # On the DB-API cursor (SQLAlchemy's execution cost more than the read);
            # a lock timeout must still reach callers as SQLAlchemy's error.
            sql = compiled(conn, stmt)
            cursor = dbapi(conn).cursor()
            try:
                with sqlpipeline.as_sqlalchemy_errors(conn, sql.string):
                    cursor.execute(sql.string, sql.params([{"id": HEAD_ID}])[0])
                    row = cursor.fetchone()
            finally:
                cursor.close()
            # SQLite has one writing process: only an unchanged head is served
            # (its row's stored leaf hash is then that of the last append's entry).
            if row is not None and last is not None and int(row[0]) == last.size:
                known = last.extended(self._t.head.name, last.size, {},
                                      None if row[2] is None else bytes(row[2]))
                if known is not None:  # else read from storage (nodes())
                    self._frontier = (last.size, known)
        if row is None:
            raise StorageError("ledger head row is missing (database not migrated?)")
        self._locked_size = int(row[0])
        return head_from_row(row)

    def _lock_on_postgresql(self, conn: Connection, lock: ClauseElement,
                            last: LastAppend | None,
                            ) -> tuple[Any, dict[Node, bytes] | None, bytes | None]:
        """The head's lock on PostgreSQL: (the head row, its frontier, entry ``size - 1``'s
        stored leaf hash), read in the lock's round trip.

        With this process's last append, the frontier is that append's and the
        nodes stored since (``nodes_since_statement``: a few probes, planned
        once); without it, or if they do not make it, the frontier as stored
        (``frontier_and_last_statement``, planned at every execution, and then
        in one more round trip).
        """
        head = self._t.head.name
        whole, whole_params = (self._cached_pg("frontier_and_last"),
                               sqlpipeline.frontier_params(HEAD_ID))
        if last is not None and last.head == head:
            row, rows = sqlpipeline.lock_and_read(
                conn, lock, {"id": HEAD_ID}, self._cached_pg("nodes_since"),
                sqlpipeline.since_params(HEAD_ID, last.size))
            since, marks = sqlpipeline.split_marks(rows)
            known = None if row is None else last.extended(
                head, int(row[0]), since, marks.get(sqlpipeline.SINCE_ENTRY_LEVEL))
            if row is None or known is not None:
                return row, known, marks.get(sqlpipeline.LAST_ENTRY_LEVEL)
            stored, marks = sqlpipeline.split_marks(  # locked already: one more round trip
                sqlpipeline.read_all(conn, whole, whole_params))
        else:
            row, rows = sqlpipeline.lock_and_read(conn, lock, {"id": HEAD_ID},
                                                  whole, whole_params)
            stored, marks = sqlpipeline.split_marks(rows)
        return row, stored, marks.get(sqlpipeline.LAST_ENTRY_LEVEL)

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
        known, self._frontier, self._locked_size = self._frontier, None, None
        if conn.dialect.name == "postgresql":
            self._append_in_one_statement(conn, first_index, new_size, entry_rows,
                                          node_rows=node_rows)
            self._remember(known, first_index, new_size, entry_rows[-1][2], nodes)
            return
        params = {"head_id": HEAD_ID, "first": first_index, "new_size": new_size,
                  "last": entry_rows[-1][2]}
        # The driver's own exception, since the rows bypass SQLAlchemy.
        driver_error = getattr(conn.dialect.dbapi, "IntegrityError", IntegrityError)
        entries_inserter, nodes_inserter = self._inserters()
        # Straight to the DB-API cursor, the head's move with plain values and the
        # rows as plain tuples: SQLAlchemy's execution cost more than the statements.
        cursor = dbapi(conn).cursor()
        try:
            move = compiled(conn, cast(ClauseElement, self._head_statements()[1]))
            with sqlpipeline.as_sqlalchemy_errors(conn, move.string):  # as through SQLAlchemy
                cursor.execute(move.string, move.params([params])[0])
            if cursor.rowcount != 1:
                raise ConflictError(f"ledger head is no longer at size {first_index}")
            try:
                entries_inserter.run(conn, cursor, entry_rows)
                nodes_inserter.run(conn, cursor, node_rows)
            except (IntegrityError, driver_error) as exc:
                raise ConflictError(
                    f"ledger rows from index {first_index} already exist") from exc
        finally:
            cursor.close()
        self._remember(known, first_index, new_size, entry_rows[-1][2], nodes)

    def _remember(self, known: tuple[int, dict[Node, bytes]] | None, first_index: int,
                  new_size: int, last: bytes, nodes: Sequence[tuple[Node, bytes]]) -> None:
        """Keep the frontier this append leaves for the next one (``LastAppend``), if the
        frontier it started from was read whole (:meth:`nodes`)."""
        if self._cache is None or known is None or known[0] != first_index:
            return
        held = dict(known[1])
        held.update(nodes)
        keys = frontier(new_size)
        if all(key in held for key in keys):  # always: the old frontier and what it completed
            self._cache.remember_append(LastAppend(self._t.head.name, new_size, last,
                                                   {key: held[key] for key in keys}))

    def _append_in_one_statement(self, conn: Connection, first_index: int, new_size: int,
                                 entry_rows: list[tuple[Any, ...]],
                                 *, node_rows: list[tuple[Any, ...]]) -> None:
        """PostgreSQL: the head's compare-and-swap and every row in one round trip."""
        params = sqlpipeline.append_params(HEAD_ID, first_index, new_size, entry_rows[-1][2],
                                           entry_rows=entry_rows, node_rows=node_rows)
        if self._append_at_commit and not self._session.in_nested_transaction():
            # The head is locked until the transaction ends: the statement can wait
            # for the COMMIT's pipeline (one round trip fewer while every appender waits).
            sqlpipeline.defer_append(self._session, sqlpipeline.PendingAppend(
                params, self._cached_pg("append"), self._cached_pg("append_checked"),
                (self._t.entries.name, self._t.nodes.name)))
            return
        sqlpipeline.run_append(conn, self._cached_pg("append"), params)

    def _cached_pg(self, name: str) -> ClauseElement:
        """PostgreSQL's lock-time statements (``sqlpipeline``), built once per tables."""
        stmt = self._statements.get((name, 0))
        if stmt is None:
            builders: dict[str, Callable[[LedgerTables], ClauseElement]] = {
                "frontier_and_last": sqlpipeline.frontier_and_last_statement,
                "nodes_since": sqlpipeline.nodes_since_statement,
                "append": sqlpipeline.append_statement,
                "append_checked": functools.partial(sqlpipeline.append_statement, checked=True)}
            build = builders[name]
            stmt = self._statements[(name, 0)] = build(self._t)
        return stmt

    def _head_statements(self) -> tuple[Executable, Executable]:
        """The head's lock and compare-and-swap move, built once per tables (hot: every append)."""
        found = _HEAD_STATEMENTS.get(id(self._t))
        if found is None or found[2] is not self._t.head:
            h = self._t.head.c
            lock = head_select(self._t).where(h.id == bindparam("id")).with_for_update(
                of=self._t.head)
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
        seq = head.checkpoint_seq + 1  # numbered under the lock: no two writers share one
        row = {
            "size": checkpoint.size,
            "root": checkpoint.root,
            "note": checkpoint.note,
            "signed_at": datetime.now(UTC),
            "seq": seq,
        }
        try:
            self._conn().execute(insert(self._t.checkpoints), [row])
        except IntegrityError as exc:
            raise ConflictError(f"a checkpoint of size {checkpoint.size} exists") from exc
        h = self._t.head.c
        self._conn().execute(update(self._t.head).where(h.id == HEAD_ID)
                             .values(checkpoint_seq=seq))

    def update_checkpoint_note(self, size: int, note: str) -> None:
        """Replace the note of the checkpoint at ``size`` (to add cosignatures)."""
        c = self._t.checkpoints.c
        self._writing_checkpoints()
        result = self._conn().execute(
            update(self._t.checkpoints).where(c.size == size).values(note=note)
        )
        if result.rowcount != 1:
            raise StorageError(f"no checkpoint of size {size}")


_INSERTERS: dict[int, tuple[Inserter, Inserter]] = {}
"""The entries and nodes inserters per ``LedgerTables``."""
_HEAD_STATEMENTS: dict[int, tuple[Executable, Executable, Table]] = {}
"""The head's lock and compare-and-swap statements per ``LedgerTables``."""
_first = itemgetter(0)


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
