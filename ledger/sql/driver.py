"""Driver-level helpers of the SQL storage: compiled statements and DB-API cursors.

The ledger's hot paths (appending batches, streaming a million rows to the
verifier, two small queries per proof) cost more in SQLAlchemy's execution
and result layers than in the database. So :mod:`ledger.sql.store` builds its
statements with SQLAlchemy once, compiles them once per dialect here, and
runs them on the DB-API cursor of the session's own connection (inside the
session's transaction, always with bound parameters: no SQL is built from
values).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from ledger.errors import StorageError

MULTI_ROWS = 100
"""Rows per multi-row ``INSERT ... VALUES (...), (...)`` statement (positional drivers).

SQLite runs one statement of 100 rows noticeably faster than 100 executions
of a one-row statement (fewer statement resets and driver calls); 100 rows of
four columns stay far below its limit of 32,766 bound parameters.
"""


@dataclass(frozen=True)
class DriverSql:
    """A statement compiled for one dialect, run on the DB-API cursor."""

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


_COMPILED: dict[tuple[str, int], tuple[ClauseElement, DriverSql]] = {}


def compiled(conn: Connection, stmt: ClauseElement) -> DriverSql:
    """``stmt`` compiled for ``conn``'s dialect, cached per statement object."""
    key = (conn.dialect.name, id(stmt))
    hit = _COMPILED.get(key)
    if hit is not None and hit[0] is stmt:
        return hit[1]
    result = cast(SQLCompiler, stmt.compile(dialect=conn.dialect))
    positional = result.positiontup if result.positional else None
    sql = DriverSql(result.string, tuple(positional) if positional is not None else None)
    _COMPILED[key] = (stmt, sql)
    return sql


def dbapi(conn: Connection) -> Any:
    """The DB-API connection under ``conn`` (inside the session's transaction)."""
    raw = conn.connection.dbapi_connection
    if raw is None:
        raise StorageError("the session's connection is closed")
    return raw


class Inserter:
    """Inserts rows given as tuples in a table's column order, in as few driver calls as it can."""

    def __init__(self, table: Table) -> None:
        """Build the one-row and the :data:`MULTI_ROWS`-row insert of ``table`` (not compiled)."""
        self.table = table
        self.columns = tuple(column.name for column in table.columns)
        self.one = insert(table)
        self.many = insert(table).values(
            [{name: bindparam(f"{name}_{n}") for name in self.columns} for n in range(MULTI_ROWS)]
        )
        self._flat = tuple(f"{name}_{n}" for n in range(MULTI_ROWS) for name in self.columns)

    def run(self, conn: Connection, cursor: Any, rows: list[tuple[Any, ...]]) -> None:
        """Insert ``rows`` through ``cursor`` (on ``conn``'s DB-API connection)."""
        many = compiled(conn, self.many)
        full = len(rows) - len(rows) % MULTI_ROWS
        if full and many.names == self._flat:  # positional, row after row: pass flat tuples
            flatten = itertools.chain.from_iterable
            cursor.executemany(many.string, [
                tuple(flatten(rows[start : start + MULTI_ROWS]))
                for start in range(0, full, MULTI_ROWS)
            ])
            rows = rows[full:]
        if rows:
            one = compiled(conn, self.one)
            cursor.executemany(one.string, one.column_rows(self.table, rows))
