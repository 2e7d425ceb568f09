"""Engines for SQLite (embedded default) and PostgreSQL.

SQLite runs in WAL mode with foreign keys on, and an acknowledged write
survives a crash of the process or the machine: ``synchronous=FULL``, or,
for the serving engine (``shared_flush=True``), ``synchronous=NORMAL`` with
each commit's WAL flushed by ``app.ledger.walflush`` before it goes on
(docs/adr/0035-sqlite-shared-wal-flush.md).
PostgreSQL goes through psycopg 3.

The listeners here are per engine, set as :func:`make_engine` builds it
(connection pragmas and file modes, ``BEGIN IMMEDIATE``, the pool's
checkout check); what a transaction does at COMMIT is the unit of work's
(``app.ledger.unit_of_work``).
"""

from __future__ import annotations

import functools
import select
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from psycopg import pq
from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.exc import DisconnectionError

from app.datadir import make_private
from app.ledger import walflush
from app.ledger.walflush import WalFlush
from ledger.sql import as_sqlalchemy_errors


def normalize_url(url: str) -> str:
    """Use psycopg 3 for ``postgresql://`` URLs."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


WAL_AUTOCHECKPOINT_PAGES = 10_000
"""The serving engine's checkpoint interval in WAL pages (SQLite's default: 1,000).

A checkpoint runs in the COMMIT that crosses it, on the process's only
connection, which every request then waits for while it copies pages into
the database file and syncs both files; a page that many commits changed in
between (the ledger head, the right edge of every index) is copied once.
At 1,000 pages that was every 50 submissions; at 10,000 the WAL stays under
about 41 MB. docs/adr/0044 has the figures.
"""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Autocommit at the driver level lets SQLAlchemy issue BEGIN itself, so a
    # transaction that writes can start with BEGIN IMMEDIATE (see begin hook).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # NORMAL only where every COMMIT is flushed by the engine's WalFlush.
    flushed = getattr(dbapi_connection, "wal_flush", None) is not None
    cursor.execute("PRAGMA synchronous=NORMAL" if flushed else "PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    if flushed:
        cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
    cursor.close()


def _sqlite_files(url: str) -> tuple[Path, ...]:
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return ()
    return (Path(database), Path(f"{database}-wal"), Path(f"{database}-shm"))


def _private_sqlite(files: tuple[Path, ...], flush: WalFlush | None, dbapi_connection: Any,
                    record: Any) -> None:
    # The database file is made 0600 before anything else: SQLite gives the
    # -wal and -shm it creates the database file's mode. Files left wider by an
    # older version (or another umask) are narrowed on the next connection.
    if flush is not None:
        walflush.attach(dbapi_connection, flush)
    for path in files:
        make_private(path)
    _sqlite_pragmas(dbapi_connection, record)
    for path in files:
        make_private(path)


def _sqlite_begin(conn: Any) -> None:
    # Every transaction takes the write lock up front: two processes can then
    # never both read the ledger head and append behind each other's back, and
    # SQLite never has to fail a deferred transaction's lock upgrade. On the
    # driver's connection: SQLAlchemy's execution cost more than the BEGIN.
    with as_sqlalchemy_errors(conn, "BEGIN IMMEDIATE"):  # a lock timeout, as SQLAlchemy's
        conn.connection.dbapi_connection.execute("BEGIN IMMEDIATE")


_FLUSHES: weakref.WeakKeyDictionary[Engine, WalFlush] = weakref.WeakKeyDictionary()


def wal_flush_of(engine: Engine) -> WalFlush | None:
    """The shared WAL flush of an engine made with ``shared_flush=True`` (SQLite files)."""
    return _FLUSHES.get(engine)


def _rollback_keeping_prepared(rollback: Callable[[Any], None], dbapi_connection: Any) -> None:
    """``ROLLBACK`` on a psycopg connection without forgetting its prepared statements.

    psycopg deallocates every prepared statement of the connection at a
    rollback, in case the transaction created or dropped what they name; the
    next five executions of each statement are then parsed and planned again
    (psycopg prepares at the fifth). PostgreSQL keeps prepared statements
    across a rollback, and the serving engine's transactions run no DDL, so
    the statements stay valid. Sent as libpq's own ``ROLLBACK``; anything
    unusual (a pipeline open, a closed connection, an error) goes to
    psycopg's ``rollback``, which raises as usual.
    """
    pgconn = dbapi_connection.pgconn
    if dbapi_connection.closed or pgconn.pipeline_status != pq.PipelineStatus.OFF:
        rollback(dbapi_connection)
        return
    if pgconn.transaction_status == pq.TransactionStatus.IDLE:
        return
    result = pgconn.exec_(b"ROLLBACK")
    if result.status != pq.ExecStatus.COMMAND_OK:
        rollback(dbapi_connection)


def make_engine(url: str, *, shared_flush: bool = False, keep_prepared: bool = False,
                **kwargs: Any) -> Engine:
    """Create an engine for ``url`` with Cadena's durability settings.

    ``shared_flush`` (the server's engine; SQLite database files only): COMMIT
    does not wait for the disk, and the engine's :class:`~app.ledger.walflush.WalFlush`
    makes each commit durable before its committer goes on, concurrent ones with
    one fsync (:func:`wal_flush_of`).

    ``keep_prepared`` (the server's engine; PostgreSQL): a rollback keeps the
    connection's prepared statements (:func:`_rollback_keeping_prepared`). Only
    for an engine whose transactions never create, alter or drop anything.
    """
    url = normalize_url(url)
    if url.startswith("sqlite"):
        files = _sqlite_files(url)
        flush = WalFlush(files[0].absolute()) if shared_flush and files else None
        if flush is not None:
            kwargs["connect_args"] = {**kwargs.get("connect_args", {}),
                                      "factory": walflush.FlushedConnection}
        if "poolclass" not in kwargs and ":memory:" not in url:
            # One connection per process: SQLite admits one writer at a time anyway
            # (every transaction is BEGIN IMMEDIATE), and a queue for the pool is
            # fair, where threads polling SQLite's busy handler are not (seconds of
            # p99 under load).
            kwargs.setdefault("pool_size", 1)
            kwargs.setdefault("max_overflow", 0)
            # A request waits this long for the connection, then gets 503: with
            # admission bounding what is in flight (app.admission), a wait this
            # long means the database is stuck, not busy.
            kwargs.setdefault("pool_timeout", 10)
        engine = create_engine(url, **kwargs)
        if flush is not None:
            _FLUSHES[engine] = flush
        event.listen(engine, "connect", functools.partial(_private_sqlite, files, flush))
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    # Kept connections: SQLAlchemy's default keeps 5 and closes every overflow
    # connection it gets back, so a worker with 6-16 requests in flight opened
    # and closed PostgreSQL connections (a backend each) all the time.
    # 16 + 4 per process stays near the old ceiling of 15 (max_connections).
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", 16)
        kwargs.setdefault("max_overflow", 4)
        kwargs.setdefault("pool_timeout", 10)
    engine = create_engine(url, **kwargs)
    event.listen(engine, "checkout", _replace_if_closed)
    if keep_prepared:  # the pool's reset on return calls it too
        dialect: Any = engine.dialect
        dialect.do_rollback = functools.partial(_rollback_keeping_prepared, dialect.do_rollback)
    return engine


def _replace_if_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Pool checkout: refuse a connection the server has closed; the pool opens another.

    Instead of ``pool_pre_ping`` (one round trip before every transaction): a
    server that ends a session (a restart or shutdown, ``pg_terminate_backend``,
    an idle timeout) sends its error and closes the socket, so an idle
    connection with anything to read, or already broken, is not used. Checked
    without waiting; SQLAlchemy replaces a connection refused with
    ``DisconnectionError``. A connection lost without a word (a cut cable)
    still fails its request, with 503 and nothing changed, and the pool
    is renewed after that error.
    """
    if dbapi_connection.closed or dbapi_connection.broken:
        raise DisconnectionError("the connection is closed")
    # poll, not select: select() cannot watch a descriptor above 1023, and a
    # process holding a thousand client connections has database sockets there.
    poller = select.poll()
    poller.register(dbapi_connection.pgconn.socket, select.POLLIN)
    if poller.poll(0):
        raise DisconnectionError("the server sent something to an idle connection: it closed it")
