"""Engine and session set-up for SQLite (embedded default) and PostgreSQL.

SQLite runs in WAL mode with ``synchronous=FULL`` (an acknowledged write
survives a crash of the process or the machine) and foreign keys on.
PostgreSQL goes through psycopg 3.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

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
            kwargs.setdefault("pool_timeout", 30)
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


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
