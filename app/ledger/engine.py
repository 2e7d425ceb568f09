"""Engine and session set-up for SQLite (embedded default) and PostgreSQL.

SQLite runs in WAL mode with ``synchronous=FULL`` (an acknowledged write
survives a crash of the process or the machine) and foreign keys on.
PostgreSQL goes through psycopg 3.

Rows written after the ledger append (the subject index, events) can wait
for the commit (:func:`insert_at_commit`): on PostgreSQL they are sent with
``COMMIT`` in one round trip (a psycopg pipeline), because the
append holds the ledger head's lock, which every other appender waits for,
until the transaction ends. Queued rows are never lost to a plain
``Session.commit()`` (they are inserted just before it) nor left behind by a
rollback, and an ORM query in the same transaction inserts them first, so
it reads its own writes.
"""

from __future__ import annotations

import functools
import select
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Insert, bindparam, create_engine, event, insert, make_url
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction, sessionmaker
from sqlalchemy.sql import Executable

from app.datadir import make_private
from ledger.sqldriver import compiled, dbapi
from ledger.sqlpipeline import as_sqlalchemy_errors
from ledger.treecache import TreeCache


def normalize_url(url: str) -> str:
    """Use psycopg 3 for ``postgresql://`` URLs."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Autocommit at the driver level lets SQLAlchemy issue BEGIN itself, so a
    # transaction that writes can start with BEGIN IMMEDIATE (see begin hook).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_files(url: str) -> tuple[Path, ...]:
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return ()
    return (Path(database), Path(f"{database}-wal"), Path(f"{database}-shm"))


def _private_sqlite(files: tuple[Path, ...], dbapi_connection: Any, record: Any) -> None:
    # The database file is made 0600 before anything else: SQLite gives the
    # -wal and -shm it creates the database file's mode. Files left wider by an
    # older version (or another umask) are narrowed on the next connection.
    for path in files:
        make_private(path)
    _sqlite_pragmas(dbapi_connection, record)
    for path in files:
        make_private(path)


def _sqlite_begin(conn: Any) -> None:
    # Every transaction takes the write lock up front: two processes can then
    # never both read the ledger head and append behind each other's back, and
    # SQLite never has to fail a deferred transaction's lock upgrade.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine for ``url`` with Cadena's durability settings."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
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
        event.listen(engine, "connect", functools.partial(_private_sqlite, _sqlite_files(url)))
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


TREE_CACHE = "cadena.ledger.tree_cache"
"""``Session.info`` key of the ledger's committed-tree cache (shared by a factory's sessions)."""


def make_session_factory(engine: Engine,
                         tree_cache: TreeCache | None = None) -> sessionmaker[Session]:
    """A session factory; sessions never expire objects on commit.

    ``tree_cache`` (one per database, so per engine) lets the ledger serve
    proofs from memory: ``Session.info`` starts as a shallow copy of the
    factory's, so every session sees the same cache.
    """
    info = {TREE_CACHE: tree_cache} if tree_cache is not None else {}
    return sessionmaker(bind=engine, expire_on_commit=False, info=info)


def tree_cache_of(session: Session) -> TreeCache | None:
    """The committed-tree cache of the factory that made ``session``, if it has one."""
    cache = session.info.get(TREE_CACHE)
    return cache if isinstance(cache, TreeCache) else None


AT_COMMIT = "cadena.insert_at_commit"
"""``info`` key of the rows queued by :func:`insert_at_commit`: a session's (its
transaction's), then, from its commit on, the connection's on PostgreSQL."""


def named_insert(table: Any, columns: Sequence[str]) -> Insert:
    """``INSERT`` of ``columns``, each bound to the row key of its name (for insert_at_commit)."""
    return insert(table).values({c: bindparam(c) for c in columns})


def insert_at_commit(session: Session, stmt: Executable, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` with ``stmt`` in the session's transaction, as late as its commit.

    For rows nothing in the transaction reads back through the connection
    (an ORM query inserts them first). ``stmt`` must name every column it
    sets with a ``bindparam`` of the row key (:func:`named_insert` builds one),
    and values must be what the driver takes as they are (on PostgreSQL they
    bypass SQLAlchemy's types).
    """
    if rows:
        if not session.in_transaction():
            session.begin()  # so that its end (commit or rollback) takes the rows along
        session.info.setdefault(AT_COMMIT, []).append((stmt, rows))


def _insert_queued(session: Session, *, committing: bool = False) -> None:
    """Insert the queued rows now, or (PostgreSQL, committing) hand them to ``COMMIT``."""
    queued = session.info.pop(AT_COMMIT, None)
    if queued:
        conn = session.connection()
        if committing and conn.dialect.name == "postgresql":
            conn.info.setdefault(AT_COMMIT, []).extend(queued)  # see _send_with_commit
            return
        for stmt, rows in queued:
            conn.execute(stmt, rows)


def _before_commit(session: Session) -> None:
    _insert_queued(session, committing=True)


def _before_orm_query(state: ORMExecuteState) -> None:
    if AT_COMMIT in state.session.info:
        _insert_queued(state.session)


def _forget_queued(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the outermost: committed (rows sent) or rolled back
        session.info.pop(AT_COMMIT, None)


def _send_with_commit(conn: Connection) -> None:
    """PostgreSQL: the queued rows and ``COMMIT`` in one psycopg pipeline, one round trip.

    Runs as SQLAlchemy is about to commit the connection (every session
    ``before_commit`` hook has run: a failure injected there still commits
    nothing); SQLAlchemy's own commit then finds the transaction ended.
    """
    if conn.invalidated:  # lost: SQLAlchemy's own commit fails as it should
        return
    queued = conn.info.pop(AT_COMMIT, None)
    if not queued:
        return
    raw = dbapi(conn)
    with as_sqlalchemy_errors(conn, "COMMIT"), raw.pipeline():
        cursor = raw.cursor()
        try:
            for stmt, rows in queued:
                sql = compiled(conn, stmt)
                cursor.executemany(sql.string, sql.params(rows))
            raw.commit()  # queued after the inserts: one sync
        finally:
            cursor.close()


def _drop_connection_queue(conn: Connection) -> None:
    if not conn.invalidated:  # a lost connection's record clears its info on reconnecting
        conn.info.pop(AT_COMMIT, None)


# On every session and engine (tests make their own): queued rows are inserted
# before any commit and any ORM query, and dropped with the transaction.
event.listen(Session, "before_commit", _before_commit)
event.listen(Session, "do_orm_execute", _before_orm_query)
event.listen(Session, "after_transaction_end", _forget_queued)
event.listen(Engine, "commit", _send_with_commit)
event.listen(Engine, "rollback", _drop_connection_queue)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit once at the end, roll back on any exception."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
