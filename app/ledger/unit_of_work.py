"""The unit of work: one session, one transaction, the one commit path (DESIGN invariant 2).

:class:`UnitOfWork` is the session every request (``app.ledger.route``) and
every background job (:func:`transaction`) works in. It is a SQLAlchemy
``Session`` that also carries what the ledger kernel needs of its
transaction, as attributes rather than process-wide listeners:

- the rows written at COMMIT (:meth:`UnitOfWork.insert_at_commit`): rows
  written after the ledger append (the subject index, packets, events) wait
  for the commit, because the append holds the ledger head's lock, which
  every other appender waits for, until the transaction ends. On PostgreSQL
  they are sent with ``COMMIT`` in one round trip (a psycopg pipeline); on
  SQLite they are inserted just before it. A rollback or close drops them,
  and a flush (so an ORM query, through autoflush) inserts them first, so
  the transaction reads its own writes;
- :meth:`UnitOfWork.commit`, the one place a transaction of the service
  commits (docs/adr/0006-the-ledger-kernel.md says where group commit goes);
- the request it serves (for refusals), the authenticated caller, whether
  the route settled it, and the factory's committed-tree cache.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, Insert, bindparam, insert
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, sessionmaker

from ledger import Actor, TreeCache
from ledger.sql import as_sqlalchemy_errors, compiled, dbapi

if TYPE_CHECKING:
    from app.ledger.summaries import RefusalSummaries

Queued = list[tuple[Insert, list[dict[str, Any]]]]


@dataclass(frozen=True)
class RequestContext:
    """What the unit of work needs of the request it serves: where refusals are counted."""

    address: str
    summaries: RefusalSummaries | None


class UnitOfWork(Session):
    """A session whose transaction records its accesses and commits in one place.

    Sessions never expire objects on commit (``make_session_factory``).
    """

    def __init__(self, *args: Any, tree_cache: TreeCache | None = None, **kwargs: Any) -> None:
        """A session (SQLAlchemy's arguments) sharing the factory's ``tree_cache``, if any."""
        super().__init__(*args, **kwargs)
        self.tree_cache = tree_cache
        self.request: RequestContext | None = None
        self.caller: tuple[Actor, str] | None = None
        """The authenticated caller and the action it asked for (set by authentication)."""
        self.settled = False
        """Whether the route ended the transaction (``app.ledger.route.settle``)."""
        self._at_commit: Queued = []

    def insert_at_commit(self, stmt: Insert, rows: list[dict[str, Any]]) -> None:
        """Insert ``rows`` with ``stmt`` in this transaction, as late as its commit.

        For rows nothing in the transaction reads back through the connection
        (a flush, so an ORM query, inserts them first). ``stmt`` must name every
        column it sets with a ``bindparam`` of the row key (:func:`named_insert`
        builds one), and values must be what the driver takes as they are (on
        PostgreSQL they bypass SQLAlchemy's types).
        """
        if rows:
            if not self.in_transaction():
                self.begin()  # a transaction to end: the route settles it
            self._at_commit.append((stmt, rows))

    @property
    def queued_at_commit(self) -> Sequence[tuple[Insert, list[dict[str, Any]]]]:
        """The statements and rows waiting for the commit."""
        return tuple(self._at_commit)

    def flush(self, objects: Sequence[Any] | None = None) -> None:
        """Flush the ORM's changes, then insert the rows queued for the commit.

        In that order on both databases, as at COMMIT on PostgreSQL.
        """
        super().flush(objects)
        if self._at_commit:
            queued, self._at_commit = self._at_commit, []
            conn = self.connection()
            for stmt, rows in queued:
                conn.execute(stmt, rows)

    def commit(self) -> None:
        """Commit the transaction with its queued rows: the one commit path of the service.

        PostgreSQL: the ORM's changes are flushed, then the queued rows and
        ``COMMIT`` go in one psycopg pipeline (:meth:`_send_with_commit`);
        SQLAlchemy's own commit then finds the transaction ended. SQLite: the
        ORM's changes and the rows are inserted, then the transaction commits.
        """
        if self._at_commit:
            conn = self.connection()
            if conn.dialect.name == "postgresql" and not conn.invalidated:
                queued, self._at_commit = self._at_commit, []
                super().flush()
                self._send_with_commit(conn, queued)
            else:  # a lost connection fails in flush, as it should
                self.flush()
        super().commit()

    @staticmethod
    def _send_with_commit(conn: Connection, queued: Queued) -> None:
        """PostgreSQL: the queued rows and ``COMMIT`` in one pipeline, one round trip."""
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

    def rollback(self) -> None:
        """Roll back, dropping the rows queued for the commit."""
        self._at_commit = []
        super().rollback()

    def close(self) -> None:
        """Close (rolling back anything open), dropping the rows queued for the commit."""
        self._at_commit = []
        super().close()


def as_unit_of_work(session: Session) -> UnitOfWork:
    """``session`` as the unit of work it must be (a session from :func:`make_session_factory`)."""
    if not isinstance(session, UnitOfWork):
        raise TypeError("the ledger records only through a UnitOfWork (make_session_factory)")
    return session


def insert_at_commit(session: Session, stmt: Insert, rows: list[dict[str, Any]]) -> None:
    """:meth:`UnitOfWork.insert_at_commit` on ``session``."""
    as_unit_of_work(session).insert_at_commit(stmt, rows)


def named_insert(table: Any, columns: Sequence[str]) -> Insert:
    """``INSERT`` of ``columns``, each bound to the row key of its name (for insert_at_commit)."""
    return insert(table).values({c: bindparam(c) for c in columns})


def make_session_factory(engine: Engine,
                         tree_cache: TreeCache | None = None) -> sessionmaker[UnitOfWork]:
    """A factory of units of work on ``engine``; they never expire objects on commit.

    ``tree_cache`` (one per database, so per engine) lets the ledger serve
    proofs from memory: every unit of work of the factory shares it.
    """
    return sessionmaker(bind=engine, class_=UnitOfWork, expire_on_commit=False,
                        tree_cache=tree_cache)


def tree_cache_of(session: Session) -> TreeCache | None:
    """The committed-tree cache of the factory that made ``session``, if it has one."""
    return session.tree_cache if isinstance(session, UnitOfWork) else None


@contextmanager
def transaction(factory: sessionmaker[UnitOfWork]) -> Iterator[UnitOfWork]:
    """One unit of work of a background job: commit once at the end, roll back on any exception."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
