"""The ledger's SQL storage engine (SQLAlchemy 2, SQLite and PostgreSQL): a front of its own.

Kept out of the :mod:`ledger` front so that importing ``ledger`` (the client,
the offline verifier) never imports SQLAlchemy. Only the service's ledger
kernel and the migrations use it.

- :mod:`ledger.sql.schema`: the tables (:func:`define_ledger_tables`), shared
  with the migrations;
- :mod:`ledger.sql.store` and :mod:`ledger.sql.reads`: :class:`SqlStorage`,
  the :class:`~ledger.LedgerStorage` inside the caller's transaction;
- :mod:`ledger.sql.keylog`: the key log's tables and :class:`SqlKeyLog`;
- :mod:`ledger.sql.driver` (compiled statements, DB-API cursors) and
  :mod:`ledger.sql.pipeline` (PostgreSQL's short append path).
"""

from ledger.sql.driver import compiled, dbapi
from ledger.sql.keylog import KeyedIndex, KeyLogTables, SqlKeyLog, define_key_log_tables
from ledger.sql.pipeline import as_sqlalchemy_errors
from ledger.sql.reads import SqlReads
from ledger.sql.schema import HEAD_ID, LedgerTables, define_ledger_tables, last_leaf
from ledger.sql.store import SqlStorage

__all__ = [
    "HEAD_ID",
    "KeyLogTables",
    "KeyedIndex",
    "SqlKeyLog",
    "define_key_log_tables",
    "LedgerTables",
    "SqlReads",
    "SqlStorage",
    "as_sqlalchemy_errors",
    "compiled",
    "dbapi",
    "define_ledger_tables",
    "last_leaf",
]
