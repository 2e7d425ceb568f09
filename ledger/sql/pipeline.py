"""PostgreSQL's short path for appends: few round trips while the head is locked.

On PostgreSQL every appender in every process waits on the head row's lock
(``SELECT ... FOR UPDATE``) until the holder commits, so each round trip the
holder makes between taking the lock and ``COMMIT`` is paid by every other
appender too. :class:`ledger.sql.store.SqlStorage` therefore uses two
statements here instead of five or more:

- :func:`lock_with_frontier`: the lock, the frontier nodes and the last
  entry's stored leaf hash, sent together in one psycopg pipeline (one round
  trip). They are two statements, not one,
  on purpose: at ``READ COMMITTED`` a statement reads with the snapshot it
  started with, and a ``FOR UPDATE`` that waited for the previous holder sees
  its new head row but not, in the same statement, the nodes that holder
  committed. The second statement starts once the first holds the lock, so
  its snapshot has them, and nothing can append while it runs.
- :data:`APPEND` (built per tables by :func:`append_statement`): the head's
  compare-and-swap and the inserts of the entry and node rows in one
  statement (data-modifying CTEs, rows as arrays through ``unnest``); the
  rows are inserted only if the head moved, so a stale append still writes
  nothing and answers zero.

Errors the driver raises here are turned into SQLAlchemy's (``OperationalError``
for a lock timeout, ``IntegrityError``...), as if the statements had gone
through SQLAlchemy, and a lost connection is invalidated in the pool.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

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
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.types import TypeEngine

from ledger.sql.driver import compiled, dbapi
from ledger.sql.schema import LedgerTables

MAX_LEVEL = 62
"""The highest tree level a ``BIGINT`` size can have a frontier node at."""


def frontier_statement(tables: LedgerTables) -> ClauseElement:
    """The stored frontier nodes of the tree the head row says it has (``:id``).

    For a size ``n`` the frontier (``ledger.format.merkle.frontier``) has one perfect
    subtree per set bit ``l`` of ``n``: level ``l``, last leaf
    ``((n >> l) << l) - 1``; each is one primary-key probe.
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
    """The parameters of :func:`frontier_statement`."""
    return {"id": head_id, "lowest": 0, "highest": MAX_LEVEL, "bit": 1}


def append_statement(tables: LedgerTables) -> ClauseElement:
    """Move the head from ``:first`` and insert the rows, in one statement; counts moves (0/1)."""
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


def last_entry_statement(tables: LedgerTables) -> ClauseElement:
    """The leaf hash stored with the entry before the head's size (``:id``), if any."""
    h, e = tables.head.c, tables.entries.c
    return (select(e.leaf_hash).select_from(tables.head)
            .join(tables.entries, e.index == h.size - literal_column("1"))
            .where(h.id == bindparam("id")))


def lock_with_frontier(conn: Connection, lock: ClauseElement,
                       lock_params: Mapping[str, Any], frontier: ClauseElement,
                       *, frontier_params: Mapping[str, Any],
                       last_entry: ClauseElement) -> tuple[Any, list[Any], bytes | None]:
    """Run the head lock, then the frontier and the last entry's leaf hash, in one round trip.

    Returns (head row, node rows, the stored leaf hash of entry ``size - 1``
    or ``None``); ``last_entry`` takes the frontier's ``:id``.
    """
    lock_sql, frontier_sql = compiled(conn, lock), compiled(conn, frontier)
    last_sql = compiled(conn, last_entry)
    raw = dbapi(conn)
    with as_sqlalchemy_errors(conn, lock_sql.string):
        with raw.pipeline(), raw.cursor() as head_cursor, raw.cursor() as node_cursor, \
                raw.cursor() as last_cursor:
            head_cursor.execute(lock_sql.string, lock_sql.params([lock_params])[0])
            node_cursor.execute(frontier_sql.string, frontier_sql.params([frontier_params])[0])
            last_cursor.execute(last_sql.string,
                                last_sql.params([{"id": frontier_params["id"]}])[0])
            head = head_cursor.fetchone()
            nodes = node_cursor.fetchall()
            last = last_cursor.fetchone()
    return head, nodes, None if last is None else bytes(last[0])


def run_one(conn: Connection, stmt: ClauseElement, params: Mapping[str, Any]) -> Any:
    """The first row of ``stmt`` on the session's DB-API connection (driver errors mapped)."""
    sql = compiled(conn, stmt)
    raw = dbapi(conn)
    with as_sqlalchemy_errors(conn, sql.string), raw.cursor() as cursor:
        cursor.execute(sql.string, sql.params([params])[0])
        return cursor.fetchone()
