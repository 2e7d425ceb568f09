"""One SQL construct both databases speak: rows aggregated into a JSON array of objects.

A query that needs a parent row and its child rows in one round trip (a
retrieval reads the packet and its streams) folds the children into one
column: ``json_group_array(json_object(...))`` on SQLite,
``json_agg(json_build_object(...))`` on PostgreSQL. :func:`json_rows` reads
the column back as a list of dicts on either (SQLite returns text,
psycopg a parsed list; no child row is ``[]`` or ``NULL``).
"""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import ColumnElement, literal_column
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

_NAME = re.compile(r"[a-z_][a-z0-9_]*")


class json_array_of(FunctionElement[Any]):  # noqa: N801  (used like a SQL function)
    """``json_array_of(index=col, sha256=col)``: an aggregate, one object per row."""

    name = "json_array_of"
    inherit_cache = True

    def __init__(self, **columns: ColumnElement[Any] | Any) -> None:
        """Each keyword names an object member; its value is the column."""
        args: list[Any] = []
        for key, column in columns.items():
            if not _NAME.fullmatch(key):
                raise ValueError(f"not a plain member name: {key!r}")
            args += [literal_column(f"'{key}'"), column]
        super().__init__(*args)


@compiles(json_array_of)
def _sqlite(element: json_array_of, compiler: SQLCompiler, **kw: Any) -> str:
    return f"json_group_array(json_object({compiler.process(element.clauses, **kw)}))"


@compiles(json_array_of, "postgresql")
def _postgresql(element: json_array_of, compiler: SQLCompiler, **kw: Any) -> str:
    return f"json_agg(json_build_object({compiler.process(element.clauses, **kw)}))"


def json_rows(value: Any) -> list[dict[str, Any]]:
    """The objects of a :class:`json_array_of` column, as the database returned it."""
    if value is None:
        return []
    rows = json.loads(value) if isinstance(value, str | bytes) else value
    if not isinstance(rows, list):
        raise TypeError("a json_array_of column is not a JSON array")
    return rows
