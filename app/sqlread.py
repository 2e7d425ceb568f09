"""Hot reads on the DB-API cursor: a Core ``SELECT`` compiled once per dialect.

SQLAlchemy's execution and result layers cost about 70 µs a statement (the
compiled cache's lookup, the execution context, the result's metadata and
row objects), more than SQLite takes to answer the reads of a retrieve or a
listing. :class:`DriverQuery` builds the statement with SQLAlchemy as
before, compiles it once per dialect, and runs it on the DB-API cursor of the
session's own connection (in the session's transaction, always with bound
parameters: no SQL is built from a value). Values go in and come out through
the column types' own processors, the ones SQLAlchemy would apply, so a row
holds what ``Connection.execute`` would have given, as a named tuple.

Listeners of the engine's ``before_cursor_execute`` event (tests that count
statements) are still told of each statement. The caller gives a value for
every parameter the statement leaves without one; those it binds to
constants of its own (a separator, an enum member) keep theirs. A statement
with an expanding ``IN`` parameter is not supported.
(The ledger's own statements are run alike by ``ledger.sql.driver``.)
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Insert, Select
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql.compiler import SQLCompiler

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True)
class _Plan:
    """A statement compiled for one dialect, with what converts its values."""

    string: str
    names: tuple[str, ...]
    """The parameters in the order the driver takes them (every one, once, if named)."""
    positional: bool
    binds: tuple[Processor, ...]
    fixed: Mapping[str, Any]
    """Values of the parameters the statement binds to constants, converted already."""
    results: tuple[Processor, ...]
    converts: bool
    """Whether any column has a processor (else rows are made as they come)."""
    row: type[tuple[Any, ...]]


def _binder(kind: Any, dialect: Dialect) -> Processor:
    """The bind processor SQLAlchemy applies to a ``kind`` value on ``dialect``."""
    process: Processor = kind.dialect_impl(dialect).bind_processor(dialect)
    return process


class DriverQuery:
    """A ``SELECT`` run on the session connection's DB-API cursor (module docstring)."""

    def __init__(self, stmt: Select[*tuple[Any, ...]] | Insert) -> None:
        """``stmt``; its parameters without a value of their own are the caller's.

        An ``INSERT`` is run by :meth:`execute_many` (rows, no result).
        """
        self.stmt = stmt
        self._plans: dict[str, _Plan] = {}

    def _plan(self, dialect: Dialect) -> _Plan:
        plan = self._plans.get(dialect.name)
        if plan is None:
            plan = self._plans[dialect.name] = self._compile(dialect)
        return plan

    def _compile(self, dialect: Dialect) -> _Plan:
        # Placeholder values only let the compiler render the statement's own
        # constants that must be inline (SQLite's group_concat separator); the
        # caller's parameters stay bound.
        binds = self.stmt.compile(dialect=dialect).binds.values()
        for bind in binds:
            if bind.expanding or (bind.required and bind.literal_execute):
                raise TypeError(f"{bind.key}: a parameter DriverQuery cannot bind")
        wanted = {bind.key for bind in binds if bind.required}
        placeholders = dict.fromkeys(wanted)
        compiled: SQLCompiler = (
            self.stmt.params(placeholders).compile(
                dialect=dialect, compile_kwargs={"render_postcompile": True})
            if isinstance(self.stmt, Select) else self.stmt.compile(dialect=dialect))
        if "POSTCOMPILE" in compiled.string:  # an INSERT's constant that must be inline
            raise TypeError("a statement DriverQuery cannot render")
        if compiled.positional:
            names = tuple(compiled.positiontup or ())
        else:
            names = tuple(dict.fromkeys(compiled.bind_names.values()))
        rendered = compiled.binds
        fixed: dict[str, Any] = {}
        for name in names:
            if name in wanted:
                continue
            bind = rendered[name]
            if bind.callable is not None:
                raise TypeError(f"{name}: a parameter DriverQuery cannot bind")
            process = _binder(bind.type, dialect)
            value = bind.effective_value
            fixed[name] = value if process is None else process(value)
        missing = wanted - set(names)
        if missing:
            raise TypeError(f"the statement binds no {sorted(missing)}")
        processors = tuple(None if name in fixed else _binder(rendered[name].type, dialect)
                           for name in names)
        select = self.stmt if isinstance(self.stmt, Select) else None
        columns = list(select.selected_columns) if select is not None else []
        results = tuple(column.type.dialect_impl(dialect).result_processor(dialect, None)
                        for column in columns)
        keys = list(select.selected_columns.keys()) if select is not None else []
        return _Plan(compiled.string, names, compiled.positional, processors, fixed, results,
                     any(p is not None for p in results),
                     namedtuple("Row", keys, rename=True))

    def _driver_params(self, plan: _Plan, values: Mapping[str, Any]) -> Any:
        out = [plan.fixed[name] if name in plan.fixed
               else values[name] if process is None else process(values[name])
               for name, process in zip(plan.names, plan.binds, strict=True)]
        return tuple(out) if plan.positional else dict(zip(plan.names, out, strict=True))

    @staticmethod
    def _cursor(conn: Connection, plan: _Plan, params: Any, *, many: bool) -> Any:
        raw = conn.connection.dbapi_connection
        if raw is None:
            raise RuntimeError("the session's connection is closed")
        cursor = raw.cursor()
        if conn.dispatch.before_cursor_execute:  # a listener: tests that count statements
            conn.dispatch.before_cursor_execute(conn, cursor, plan.string, params, None, many)
        return cursor

    def execute_many(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run the statement once for each of ``rows`` (an ``INSERT``: one driver call)."""
        plan = self._plan(conn.dialect)
        params = [self._driver_params(plan, row) for row in rows]
        cursor = self._cursor(conn, plan, params, many=True)
        try:
            cursor.executemany(plan.string, params)
        finally:
            cursor.close()

    def _fetch(self, conn: Connection, values: Mapping[str, Any], *, one: bool
               ) -> tuple[_Plan, list[Any]]:
        plan = self._plan(conn.dialect)
        params = self._driver_params(plan, values)
        cursor = self._cursor(conn, plan, params, many=False)
        try:
            cursor.execute(plan.string, params)
            if one:
                row = cursor.fetchone()
                fetched = [] if row is None else [row]
            else:
                fetched = list(cursor.fetchall())
        finally:
            cursor.close()
        return plan, fetched

    @staticmethod
    def _rows(plan: _Plan, fetched: list[Any]) -> list[Any]:
        make = plan.row._make  # type: ignore[attr-defined]
        if not plan.converts:
            return [make(row) for row in fetched]
        results = plan.results
        return [make([v if p is None else p(v) for p, v in zip(results, row, strict=True)])
                for row in fetched]

    def all(self, conn: Connection, values: Mapping[str, Any]) -> list[Any]:
        """Every row, as named tuples of converted values."""
        plan, fetched = self._fetch(conn, values, one=False)
        return self._rows(plan, fetched)

    def first(self, conn: Connection, values: Mapping[str, Any]) -> Any | None:
        """The first row, or ``None`` (the rest are not read)."""
        plan, fetched = self._fetch(conn, values, one=True)
        rows = self._rows(plan, fetched)
        return rows[0] if rows else None


_STATEMENTS: dict[int, tuple[Insert, DriverQuery]] = {}


def execute_many(conn: Connection, stmt: Insert, rows: Sequence[Mapping[str, Any]]) -> None:
    """``stmt`` for each of ``rows`` on the DB-API cursor (compiled once per statement)."""
    hit = _STATEMENTS.get(id(stmt))
    if hit is None or hit[0] is not stmt:
        hit = _STATEMENTS[id(stmt)] = (stmt, DriverQuery(stmt))
    hit[1].execute_many(conn, rows)
