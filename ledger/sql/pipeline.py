"""PostgreSQL's short path for appends: few round trips while the head is locked.

On PostgreSQL every appender in every process waits on the head row's lock
(``SELECT ... FOR UPDATE``) until the holder commits, so each round trip the
holder makes between taking the lock and ``COMMIT`` is paid by every other
appender too. :class:`ledger.sql.store.SqlStorage` therefore uses two
statements here instead of five or more:

- :func:`lock_and_read`: the lock, then what the append needs of the tree,
  sent together in one psycopg pipeline (one round trip): the nodes stored
  since this process's last append and what ties them to it
  (:func:`nodes_since_statement`, ADR 0046), or without one the frontier
  nodes (:func:`frontier_and_last_statement`); both with the last entry's
  stored leaf hash. They are two statements, not one, on purpose: at ``READ
  COMMITTED`` a statement reads with the snapshot it started with, and a
  ``FOR UPDATE`` that waited for the previous holder sees its new head row
  but not, in the same statement, the nodes that holder committed. The
  second statement starts once the first holds the lock, so its snapshot
  has them, and nothing can append while it runs.
- :data:`APPEND` (built per tables by :func:`append_statement`): the head's
  compare-and-swap and the inserts of the entry and node rows in one
  statement (data-modifying CTEs, rows as arrays through ``unnest``); the
  rows are inserted only if the head moved, so a stale append still writes
  nothing and answers zero.
- For a session whose commit sends it (the service's unit of work), that
  statement waits for ``COMMIT`` (:class:`PendingAppend`) and goes in the
  pipeline that carries it (:func:`commit_with_append`): from the lock to
  the end of the transaction the holder makes one round trip, not two. Its
  checked form fails (division by zero, so the transaction aborts and the
  ``COMMIT`` rolls back) when the head did not move. Anything the session
  runs before then (a read of the ledger's tables, an ORM query or flush)
  sends it first (:func:`send_pending_append`), so the transaction always
  reads its own append.
- That pipeline's ``COMMIT`` runs with ``synchronous_commit`` off: it
  releases the head as soon as its record is in the WAL buffers, not after
  the disk (PostgreSQL keeps row locks until the flush, so every appender
  waited for each earlier one's fsync). :func:`flush_wal` then makes it
  durable, outside the lock, before the caller answers anyone.

Errors the driver raises here are turned into SQLAlchemy's (``OperationalError``
for a lock timeout, ``IntegrityError``...), as if the statements had gone
through SQLAlchemy, and a lost connection is invalidated in the pool.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from psycopg import IsolationLevel, pq
from sqlalchemy import (
    BigInteger,
    Integer,
    LargeBinary,
    SmallInteger,
    bindparam,
    exists,
    func,
    insert,
    literal_column,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement, Select
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.types import TypeEngine

from ledger.errors import ConflictError, StorageError
from ledger.sql.driver import compiled, dbapi
from ledger.sql.schema import LedgerTables

MAX_LEVEL = 62
"""The highest tree level a ``BIGINT`` size can have a frontier node at."""


def frontier_statement(tables: LedgerTables) -> Select[Any]:
    """The stored frontier nodes of the tree the head row says it has (``:id``).

    For a size ``n`` the frontier (``ledger.format.merkle.frontier``) has one perfect
    subtree per set bit ``l`` of ``n``: level ``l``, last leaf
    ``((n >> l) << l) - 1``; each is one primary-key probe.

    PostgreSQL plans it again at every execution (a ``generate_series`` of
    parameters is estimated at a thousand rows, so the generic plan never
    looks cheaper), about 190 µs of its CPU. That is kept on purpose: with
    constant levels the generic plan made once probed the nodes by level
    alone and filtered a whole level of the tree, 47 µs to 684 µs an append
    as the ledger grew; a generic plan reading each hash by a scalar subquery
    on the whole key made retrieve dearer still (docs/adr/0043). Since ADR 0046
    a process reads it only for its first append, or when the head moved past
    what :func:`nodes_since_statement` covers.
    """
    h, n = tables.head.c, tables.nodes.c
    levels = func.generate_series(bindparam("lowest", type_=Integer()),
                                  bindparam("highest", type_=Integer())).table_valued(
        "level", name="levels").render_derived()
    level, bit = levels.c.level, bindparam("bit", type_=BigInteger())
    return (select(n.level, n.index, n.hash).select_from(tables.head)
            .join(levels, h.size.bitwise_rshift(level).bitwise_and(bit) == bit)
            .join(tables.nodes, (n.last_leaf == h.size.bitwise_rshift(level)
                                 .bitwise_lshift(level) - bit) & (n.level == level))
            .where(h.id == bindparam("id")))


def frontier_params(head_id: int) -> dict[str, int]:
    """The parameters of :func:`frontier_and_last_statement` (both parts take ``:id``)."""
    return {"id": head_id, "lowest": 0, "highest": MAX_LEVEL, "bit": 1}


def append_statement(tables: LedgerTables, *, checked: bool = False) -> ClauseElement:
    """Move the head from ``:first`` and insert the rows, in one statement; counts moves (0/1).

    ``checked``: answer ``1 / moves`` instead, so that a head that did not
    move fails the statement (SQLSTATE 22012) and with it the transaction,
    for a pipeline that sends ``COMMIT`` without reading the answer first.
    """
    h = tables.head.c
    moved = (update(tables.head)
             .where(h.id == bindparam("head_id"), h.size == bindparam("first"))
             .values(size=bindparam("new_size"), last_leaf_hash=bindparam("last"))
             .returning(h.size).cte("moved"))
    if_moved = exists(select(moved.c.size))
    ctes = []
    kinds: dict[str, tuple[type[TypeEngine[Any]], ...]] = {
        "entries": (BigInteger, LargeBinary, LargeBinary),
        "nodes": (BigInteger, SmallInteger, BigInteger, LargeBinary)}
    for name, table in (("entries", tables.entries), ("nodes", tables.nodes)):
        columns = [column.name for column in table.columns]
        arrays: list[BindParameter[Any]] = [
            bindparam(f"{name}_{column}", type_=ARRAY(kind()))
            for column, kind in zip(columns, kinds[name], strict=True)]
        rows = func.unnest(*arrays).table_valued(*columns, name=f"{name}_rows").render_derived()
        ctes.append(insert(table).from_select(columns, select(*rows.c).where(if_moved))
                    .cte(f"inserted_{name}"))
    if checked:  # not a constant: evaluated per execution, never folded by the planner
        # ... and this transaction's COMMIT does not wait for the disk (SET LOCAL's
        # function form, one row joined to the count so that it runs).
        no_wait = select(func.set_config(literal_column("'synchronous_commit'"),
                                         literal_column("'off'"), true()).label("set")
                         ).cte("no_wait")
        return (select(literal_column("1") / func.count())
                .select_from(moved.join(no_wait, true())).add_cte(*ctes))
    return select(func.count()).select_from(moved).add_cte(*ctes)


def append_params(head_id: int, first: int, new_size: int, last: bytes,
                  *, entry_rows: Sequence[tuple[Any, ...]],
                  node_rows: Sequence[tuple[Any, ...]]) -> dict[str, Any]:
    """The parameters of :func:`append_statement`: rows given in table column order."""
    params: dict[str, Any] = {"head_id": head_id, "first": first, "new_size": new_size,
                              "last": last}
    for name, columns, rows in (("entries", ("index", "entry", "leaf_hash"), entry_rows),
                                ("nodes", ("last_leaf", "level", "index", "hash"), node_rows)):
        values = list(zip(*rows, strict=True)) if rows else [() for _ in columns]
        for column, column_values in zip(columns, values, strict=True):
            params[f"{name}_{column}"] = list(column_values)
    return params


@contextmanager
def as_sqlalchemy_errors(conn: Connection, statement: str) -> Iterator[None]:
    """Raise what the driver raises as SQLAlchemy's exception; invalidate a lost connection."""
    driver = conn.dialect.loaded_dbapi
    try:
        yield
    except driver.Error as exc:
        raw = dbapi(conn)
        lost = conn.dialect.is_disconnect(exc, raw, None)
        if lost:
            conn.invalidate(exc)
        raise DBAPIError.instance(statement, None, exc, driver.Error,
                                  connection_invalidated=lost, dialect=conn.dialect) from exc


LAST_ENTRY_LEVEL = -1
"""The level of the row :func:`frontier_and_last_statement` gives for the last entry's
stored leaf hash (no node has it: levels are 0 to :data:`MAX_LEVEL`)."""


def last_entry_statement(tables: LedgerTables) -> Select[Any]:
    """The leaf hash stored with the entry before the head's size (``:id``), if any,
    as a row of the frontier's shape: (:data:`LAST_ENTRY_LEVEL`, its index, the hash)."""
    h, e = tables.head.c, tables.entries.c
    return (select(literal_column(str(LAST_ENTRY_LEVEL)).cast(SmallInteger()).label("level"),
                   e.index, e.leaf_hash).select_from(tables.head)
            .join(tables.entries, e.index == h.size - literal_column("1"))
            .where(h.id == bindparam("id")))


def frontier_and_last_statement(tables: LedgerTables) -> ClauseElement:
    """:func:`frontier_statement` and :func:`last_entry_statement` in one statement."""
    return union_all(frontier_statement(tables), last_entry_statement(tables))


SINCE_ENTRY_LEVEL = -2
"""The level of the row :func:`nodes_since_statement` gives for the stored leaf hash of
entry ``since - 1``, the last of the tree the caller knows (no node has it either)."""
MAX_SINCE = 256
"""Entries appended by others that :func:`nodes_since_statement` reads the nodes of, at most
(about two nodes an entry); a head further on is read whole (:func:`frontier_statement`)."""


def nodes_since_statement(tables: LedgerTables) -> ClauseElement:
    """What a caller that knows the tree of ``:since`` leaves needs to extend its frontier to
    the head's, in one statement of primary-key ranges and probes (planned once).

    Every node ending in ``[:since, :until)``; the stored leaf hash of entry
    ``:since - 1`` (level :data:`SINCE_ENTRY_LEVEL`), which says whether the
    stored tree still begins with the one the caller knows; and
    :func:`last_entry_statement`'s row (``:id``).
    """
    n, e = tables.nodes.c, tables.entries.c
    since = bindparam("since", type_=BigInteger())
    nodes = select(n.level, n.index, n.hash).where(
        n.last_leaf >= since, n.last_leaf < bindparam("until", type_=BigInteger()))
    known = select(literal_column(str(SINCE_ENTRY_LEVEL)).cast(SmallInteger()).label("level"),
                   e.index, e.leaf_hash).where(e.index == since - literal_column("1"))
    return union_all(nodes, known, last_entry_statement(tables))


def since_params(head_id: int, since: int) -> dict[str, int]:
    """The parameters of :func:`nodes_since_statement` for a caller that knows ``since`` leaves."""
    return {"id": head_id, "since": since, "until": since + MAX_SINCE}


def lock_and_read(conn: Connection, lock: ClauseElement, lock_params: Mapping[str, Any],
                  read: ClauseElement, read_params: Mapping[str, Any]) -> tuple[Any, list[Any]]:
    """Run the head lock, then ``read``, in one round trip: (head row, ``read``'s rows).

    ``read`` (:func:`frontier_and_last_statement`, :func:`nodes_since_statement`)
    runs once the lock is held, a statement of its own: its snapshot has what
    the previous holder committed.
    """
    lock_sql, read_sql = compiled(conn, lock), compiled(conn, read)
    raw = dbapi(conn)
    with as_sqlalchemy_errors(conn, lock_sql.string):
        with raw.pipeline(), raw.cursor() as head_cursor, raw.cursor() as read_cursor:
            head_cursor.execute(lock_sql.string, lock_sql.params([lock_params])[0])
            read_cursor.execute(read_sql.string, read_sql.params([read_params])[0])
            head = head_cursor.fetchone()
            rows = read_cursor.fetchall()
    return head, rows


def read_all(conn: Connection, stmt: ClauseElement, params: Mapping[str, Any]) -> list[Any]:
    """Every row of ``stmt`` on the session's DB-API connection (driver errors mapped)."""
    sql = compiled(conn, stmt)
    raw = dbapi(conn)
    with as_sqlalchemy_errors(conn, sql.string), raw.cursor() as cursor:
        cursor.execute(sql.string, sql.params([params])[0])
        return list(cursor.fetchall())


def split_marks(rows: Sequence[Any]) -> tuple[dict[tuple[int, int], bytes], dict[int, bytes]]:
    """Rows of a read above: the nodes' hashes by key, and the entries' leaf hashes by their
    negative level (:data:`LAST_ENTRY_LEVEL`, :data:`SINCE_ENTRY_LEVEL`)."""
    nodes: dict[tuple[int, int], bytes] = {}
    marks: dict[int, bytes] = {}
    for level, index, value in rows:
        if level < 0:
            marks[int(level)] = bytes(value)
        else:
            nodes[(int(level), int(index))] = bytes(value)
    return nodes, marks


def run_one(conn: Connection, stmt: ClauseElement, params: Mapping[str, Any]) -> Any:
    """The first row of ``stmt`` on the session's DB-API connection (driver errors mapped)."""
    sql = compiled(conn, stmt)
    raw = dbapi(conn)
    with as_sqlalchemy_errors(conn, sql.string), raw.cursor() as cursor:
        cursor.execute(sql.string, sql.params([params])[0])
        return cursor.fetchone()


def run_append(conn: Connection, stmt: ClauseElement, params: Mapping[str, Any]) -> None:
    """Run :func:`append_statement` now: ``ConflictError`` if the head moved, or rows exist."""
    try:
        (moved,) = run_one(conn, stmt, params)
    except IntegrityError as exc:
        raise ConflictError(f"ledger rows from index {params['first']} already exist") from exc
    if moved != 1:
        raise ConflictError(f"ledger head is no longer at size {params['first']}")


PENDING = "ledger.sql.pending_append"
"""The key of a session's :class:`PendingAppend` in ``Session.info``."""
_STALE = "22012"  # division_by_zero: the checked append found the head moved
_SESSION_WAIT = "SET synchronous_commit TO on"
_FLUSH = "SELECT pg_logical_emit_message(true, 'cadena', '')"


_SYNCHRONOUS: weakref.WeakSet[Any] = weakref.WeakSet()
"""The DB-API connections whose session already commits synchronously (set by us once)."""


def flush_wal(conn: Connection) -> str:
    """Return once PostgreSQL's WAL is on disk up to here: every earlier COMMIT is durable.

    One statement in a transaction of its own (autocommit), one round trip: a
    transactional WAL message gives it a record, so its synchronous commit
    flushes the WAL up to it, which covers the commit records written before
    it on this connection. The session's ``synchronous_commit`` is set to
    ``on`` by the first flush on a connection, whatever the server's default
    (the appends' own transactions turn it off for themselves only, with
    ``set_config(..., true)``, ``SET LOCAL``'s function form, in their statement).
    Returns the message's WAL position (``pg_lsn`` text).
    """
    raw = dbapi(conn)
    with as_sqlalchemy_errors(conn, "COMMIT"), raw.cursor() as cursor:
        raw.autocommit = True  # the connection is idle: its transaction just committed
        try:
            if raw not in _SYNCHRONOUS:
                cursor.execute(_SESSION_WAIT)
                _SYNCHRONOUS.add(raw)
            cursor.execute(_FLUSH)
            row = cursor.fetchone()
        finally:
            if not raw.closed:
                raw.autocommit = False
    return str(row[0])


@dataclass(frozen=True)
class PendingAppend:
    """An append under the held head lock whose statement waits for the transaction's COMMIT."""

    params: dict[str, Any]
    """The parameters of both statements (:func:`append_params`)."""
    counted: ClauseElement
    """:func:`append_statement`, to run it before the COMMIT after all."""
    checked: ClauseElement
    """Its ``checked`` form, for the pipeline that ends with COMMIT."""
    tables: tuple[str, ...]
    """The tables it inserts into (a key already there in one is a conflict)."""


def defer_append(session: Session, pending: PendingAppend) -> None:
    """Keep ``pending`` for the session's commit (:func:`commit_with_append`)."""
    if PENDING in session.info:
        raise StorageError("an append already waits for the commit")  # sent by _conn first
    session.info[PENDING] = pending


def send_pending_append(session: Session) -> None:
    """Run the session's waiting append now, if it has one (something else runs first)."""
    pending: PendingAppend | None = session.info.pop(PENDING, None)
    if pending is not None:
        run_append(session.connection(), pending.counted, pending.params)


def drop_pending_append(session: Session) -> None:
    """Forget the session's waiting append (its transaction rolls back)."""
    session.info.pop(PENDING, None)


def take_pending_append(session: Session) -> PendingAppend | None:
    """The session's waiting append, now the caller's to send (with ``COMMIT``)."""
    pending: PendingAppend | None = session.info.pop(PENDING, None)
    return pending


def not_begun(raw: Any) -> bool:
    """Whether psycopg's connection ``raw`` has sent no ``BEGIN`` yet (its next statement
    would), outside a pipeline, at ``READ COMMITTED`` (PostgreSQL's default, which the
    head's lock and the reads after it assume)."""
    pgconn = raw.pgconn
    return (pgconn.transaction_status == pq.TransactionStatus.IDLE
            and pgconn.pipeline_status == pq.PipelineStatus.OFF and not raw.autocommit
            and raw.isolation_level in (None, IsolationLevel.READ_COMMITTED))


@contextmanager
def read_before_begin(conn: Connection, raw: Any) -> Iterator[None]:
    """Run what the block sends on psycopg's ``raw`` (the session's connection, which has
    sent no ``BEGIN``: :func:`not_begun`) in autocommit: each statement alone, and the
    transaction begins, as ever, with its first statement after the block.

    At ``READ COMMITTED`` a read alone sees what it would have seen as the first
    statement of the transaction (each statement reads with a snapshot of its
    own, and a plain ``SELECT`` locks nothing that outlasts it); it saves the
    ``BEGIN``'s round trip, and a transaction that only reads saves its
    ``COMMIT``'s too (psycopg sends neither for a connection that never began).
    If the connection cannot be put back, it is invalidated: it never returns
    to the pool in autocommit.
    """
    raw.autocommit = True
    try:
        yield
    finally:
        try:
            raw.autocommit = False
        except conn.dialect.loaded_dbapi.Error:
            conn.invalidate()


def commit_with_append(conn: Connection, pending: PendingAppend | None,
                       inserts: Sequence[tuple[ClauseElement, Sequence[Mapping[str, Any]]]],
                       ) -> None:
    """PostgreSQL: the waiting append, ``inserts`` and ``COMMIT`` in one pipeline, one round trip.

    Raises ``ConflictError`` if the append found the head moved (a caller
    without the lock) or its rows present; the transaction is then rolled
    back, nothing of it kept.
    """
    raw = dbapi(conn)
    if pending is None and not inserts:  # nothing to send with it: no pipeline to sync
        with as_sqlalchemy_errors(conn, "COMMIT"):
            raw.commit()  # psycopg sends nothing if the transaction never began
        return
    try:
        with as_sqlalchemy_errors(conn, "COMMIT"), raw.pipeline():
            cursor = raw.cursor()
            try:
                if pending is not None:  # its statement turns synchronous_commit off
                    sql = compiled(conn, pending.checked)
                    cursor.execute(sql.string, sql.params([pending.params])[0])
                for stmt, rows in inserts:
                    sql = compiled(conn, stmt)
                    cursor.executemany(sql.string, sql.params(rows))
                raw.commit()  # queued after the statements: one sync
            finally:
                cursor.close()
        if pending is not None:
            flush_wal(conn)
    except DBAPIError as exc:
        if pending is None:
            raise
        first = pending.params["first"]
        state = getattr(exc.orig, "sqlstate", None)
        if state == _STALE:
            raise ConflictError(f"ledger head is no longer at size {first}") from exc
        diag = getattr(exc.orig, "diag", None)
        if isinstance(exc, IntegrityError) and getattr(diag, "table_name", None) in pending.tables:
            raise ConflictError(f"ledger rows from index {first} already exist") from exc
        raise
