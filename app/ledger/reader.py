"""Ledger readers opened from a database URL: one per worker of a parallel verification.

``ledger.verify.verifier.verify_ledger`` takes a picklable opener and calls it in
each worker process (the ledger core opens no database itself). The readers
only read, each inside one transaction that is one snapshot:

- SQLite: a deferred ``BEGIN`` (not the ``BEGIN IMMEDIATE`` of ``app.ledger.engine``,
  which would queue every worker behind the write lock that the verifying
  parent already holds); in WAL mode readers never wait for the writer.
- PostgreSQL: ``REPEATABLE READ``, as ``ledger.sql.store`` asks of a verifier.

The parent's own snapshot bounds the work (its size and checkpoints): rows
appended after it lie beyond every chunk, so the workers' later snapshots
agree with it on everything they read.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from app.ledger.engine import make_engine, normalize_url
from app.models.ledger import LEDGER_TABLES
from ledger import LedgerReader
from ledger.sql import SqlStorage


def _sqlite_reader_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # SQLAlchemy's begin hook issues BEGIN
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA query_only=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_reader_begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN")


def read_engine(url: str) -> Engine:
    """An engine whose transactions only read, each one snapshot (see the module docstring)."""
    url = normalize_url(url)
    if not url.startswith("sqlite"):
        return make_engine(url, poolclass=NullPool, isolation_level="REPEATABLE READ")
    engine = create_engine(url, poolclass=NullPool)
    event.listen(engine, "connect", _sqlite_reader_connect)
    event.listen(engine, "begin", _sqlite_reader_begin)
    return engine


@dataclass(frozen=True)
class LedgerReaderOpener:
    """Opens a read-only reader of the ledger at ``url`` (picklable: called in workers)."""

    url: str

    @contextmanager
    def __call__(self) -> Iterator[LedgerReader]:
        """A reader inside one read transaction, rolled back and closed on exit."""
        engine = read_engine(self.url)
        try:
            with Session(engine) as session:
                try:
                    yield SqlStorage(session, LEDGER_TABLES)
                finally:
                    session.rollback()
        finally:
            engine.dispose()
