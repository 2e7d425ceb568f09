"""Hot statements on the DB-API cursor: a Core ``SELECT`` or ``INSERT`` compiled once.

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
statements) are still told of each statement, and what the driver raises is
raised as SQLAlchemy's exception (``ledger.sql.pipeline.as_sqlalchemy_errors``),
as through ``Connection.execute``. The caller gives a value for
every parameter the statement leaves without one; those it binds to
constants of its own (a separator, an enum member) keep theirs. An expanding
``IN`` parameter takes a list: the statement is compiled once per length.
An integer parameter made with ``literal_execute=True`` (a page's ``LIMIT``)
is written into the statement's text, from the value the caller gives after
checking it is an ``int``: the statement is compiled once per value, and
PostgreSQL plans it knowing the value. A ``LIMIT`` that is a parameter is
estimated at a tenth of the rows, so its prepared statement's generic plan
never looked cheaper than a custom one once an inbox held a few thousand
packets, and the listing was planned again at every request (1.5 ms of the
database's CPU, more than running it: docs/adr/0043).
(The ledger's own statements are run alike by ``ledger.sql.driver``.)
"""

from __future__ import annotations

import re
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Insert, Integer, Select
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql.compiler import SQLCompiler

from ledger.sql import as_sqlalchemy_errors
from ledger.sql.pipeline import not_begun, read_before_begin

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True)
class _Plan:
    """A statement compiled for one dialect, with what converts its values."""

    string: str
    names: tuple[str, ...]
    """The parameters in the order the driver takes them (every one, once, if named)."""
    positional: bool
    sources: tuple[tuple[str, int | None, Processor], ...]
    """For each name: the caller's parameter, the item of it (an expanding one's), and
    the bind processor; a constant's name is in :attr:`fixed` instead."""
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


_NAMED = re.compile(r"%\(([^)]+)\)s")
"""A parameter of the ``pyformat`` style (psycopg), in a compiled statement."""


@dataclass(frozen=True)
class _Binds:
    """What one dialect's compilation says of the statement's parameters."""

    wanted: frozenset[str]
    """The caller's (no value of their own)."""
    expanding: tuple[str, ...]
    """The caller's that are lists, rendered one placeholder an item."""
    literal: tuple[str, ...]
    """The caller's integers written into the statement's text."""


MAX_LITERAL_PLANS = 16
"""The compiled forms a statement with a literal parameter keeps (the oldest goes first):
a caller choosing a new value each time costs a compilation, not memory."""


class DriverQuery:
    """A ``SELECT`` (or ``INSERT``) run on the connection's DB-API cursor (module docstring)."""

    def __init__(self, stmt: Select[*tuple[Any, ...]] | Insert) -> None:
        """``stmt``; its parameters without a value of their own are the caller's.

        An ``INSERT`` is run by :meth:`execute_many` (rows, no result).
        """
        self.stmt = stmt
        self._plain = isinstance(stmt, Select) and stmt._for_update_arg is None
        """A read that locks nothing: on PostgreSQL it may run before the ``BEGIN``."""
        self._binds: dict[str, _Binds] = {}
        self._plans: dict[tuple[str, tuple[int, ...], tuple[int, ...]], _Plan] = {}

    def _plan(self, dialect: Dialect, values: Mapping[str, Any]) -> _Plan:
        binds = self._binds.get(dialect.name)
        if binds is None:
            binds = self._binds[dialect.name] = self._analyse(dialect)
        literals = tuple(values[name] for name in binds.literal)
        for value in literals:  # written into SQL: an int and nothing else (not a bool)
            if type(value) is not int:
                raise TypeError(f"a literal parameter takes an int, not {type(value).__name__}")
        key = (dialect.name, tuple(len(values[name]) for name in binds.expanding), literals)
        plan = self._plans.get(key)
        if plan is None:
            if literals and len(self._plans) >= MAX_LITERAL_PLANS:
                del self._plans[next(iter(self._plans))]
            plan = self._plans[key] = self._compile(dialect, binds, key[1], literals)
        return plan

    def _analyse(self, dialect: Dialect) -> _Binds:
        binds = self.stmt.compile(dialect=dialect).binds.values()
        literal = []
        for bind in binds:
            if bind.required and bind.literal_execute and not bind.expanding:
                if not isinstance(bind.type, Integer) or not isinstance(self.stmt, Select):
                    raise TypeError(f"{bind.key}: a parameter DriverQuery cannot bind")
                literal.append(bind.key)
            if bind.expanding and not bind.required:
                raise TypeError(f"{bind.key}: an expanding constant DriverQuery cannot bind")
        if dialect.paramstyle not in ("qmark", "pyformat"):  # pragma: no cover - SQLite, psycopg
            raise TypeError(f"DriverQuery does not know the {dialect.paramstyle} style")
        return _Binds(frozenset(bind.key for bind in binds if bind.required),
                      tuple(sorted(bind.key for bind in binds if bind.expanding)),
                      tuple(sorted(literal)))

    def _compile(self, dialect: Dialect, binds: _Binds, lengths: tuple[int, ...],
                 literals: tuple[int, ...]) -> _Plan:
        # Placeholder values only let the compiler render the statement's own
        # constants that must be inline (SQLite's group_concat separator) and one
        # placeholder per item of an expanding list; every value stays bound but
        # a literal parameter's, checked to be an int by the caller.
        wanted, expanding = binds.wanted, dict(zip(binds.expanding, lengths, strict=True))
        placeholders: dict[str, Any] = {
            name: [None] * expanding[name] if name in expanding else None for name in wanted}
        placeholders |= dict(zip(binds.literal, literals, strict=True))
        compiled: SQLCompiler = (
            self.stmt.params(placeholders).compile(
                dialect=dialect, compile_kwargs={"render_postcompile": True})
            if isinstance(self.stmt, Select) else self.stmt.compile(dialect=dialect))
        if "POSTCOMPILE" in compiled.string:  # an INSERT's constant that must be inline
            raise TypeError("a statement DriverQuery cannot render")
        names = (tuple(compiled.positiontup or ()) if compiled.positional
                 else tuple(dict.fromkeys(_NAMED.findall(compiled.string))))
        rendered = compiled.binds
        items = {f"{name}_{n}": (name, n - 1)
                 for name, length in expanding.items() for n in range(1, length + 1)}
        fixed: dict[str, Any] = {}
        sources: list[tuple[str, int | None, Processor]] = []
        for name in names:
            if name in items:
                source, item = items[name]
                sources.append((source, item, _binder(rendered[source].type, dialect)))
            elif name in wanted:
                sources.append((name, None, _binder(rendered[name].type, dialect)))
            else:
                bind = rendered[name]
                if bind.callable is not None:
                    raise TypeError(f"{name}: a parameter DriverQuery cannot bind")
                process = _binder(bind.type, dialect)
                value = bind.effective_value
                fixed[name] = value if process is None else process(value)
                sources.append((name, None, None))
        missing = (wanted - set(expanding) - set(binds.literal)) - set(names)
        if missing:
            raise TypeError(f"the statement binds no {sorted(missing)}")
        select = self.stmt if isinstance(self.stmt, Select) else None
        columns = list(select.selected_columns) if select is not None else []
        results = tuple(column.type.dialect_impl(dialect).result_processor(dialect, None)
                        for column in columns)
        keys = list(select.selected_columns.keys()) if select is not None else []
        return _Plan(compiled.string, names, compiled.positional, tuple(sources), fixed,
                     results, any(p is not None for p in results),
                     namedtuple("Row", keys, rename=True))

    @staticmethod
    def _driver_params(plan: _Plan, values: Mapping[str, Any]) -> Any:
        fixed = plan.fixed
        out = []
        for name, (source, item, process) in zip(plan.names, plan.sources, strict=True):
            if name in fixed:
                out.append(fixed[name])
                continue
            value = values[source] if item is None else values[source][item]
            out.append(value if process is None else process(value))
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
        plan = self._plan(conn.dialect, rows[0] if rows else {})
        params = [self._driver_params(plan, row) for row in rows]
        cursor = self._cursor(conn, plan, params, many=True)
        try:
            with as_sqlalchemy_errors(conn, plan.string):
                cursor.executemany(plan.string, params)
        finally:
            cursor.close()

    def _fetch(self, conn: Connection, values: Mapping[str, Any], *, one: bool
               ) -> tuple[_Plan, list[Any]]:
        plan = self._plan(conn.dialect, values)
        params = self._driver_params(plan, values)
        cursor = self._cursor(conn, plan, params, many=False)
        raw = cursor.connection
        alone = self._plain and conn.dialect.name == "postgresql" and not_begun(raw)
        try:
            # Before the transaction's BEGIN, a read goes alone (ledger.sql.pipeline
            # .read_before_begin): the BEGIN goes with the first write instead.
            with (as_sqlalchemy_errors(conn, plan.string),
                  read_before_begin(conn, raw) if alone else nullcontext()):
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
