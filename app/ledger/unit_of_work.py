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
- on PostgreSQL, the ledger append's own statement (the head's
  compare-and-swap with the entry and node rows) waits for the COMMIT too
  and leads that pipeline (``ledger.sql.pipeline.commit_with_append``), so
  the head is held for the lock's round trip and the COMMIT's, nothing else;
  any statement the unit of work runs before then sends it first. That
  COMMIT releases the head before the WAL flush, and a second transaction
  flushes it before ``commit`` returns (docs/adr/0028-append-with-the-commit.md);
- :meth:`UnitOfWork.commit`, the one place a transaction of the service
  commits (docs/adr/0006-the-ledger-kernel.md says where group commit goes);
- the request it serves (for refusals), the authenticated caller, whether
  the route settled it, and the factory's committed-tree cache.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, Insert, bindparam, insert
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, sessionmaker

from app.ledger import sqlread, walflush
from ledger import Actor, TreeCache
from ledger.sql import pipeline as sqlpipeline

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

    def __init__(self, *args: Any, tree_cache: TreeCache | None = None,
                 committer: GroupCommitter | None = None, **kwargs: Any) -> None:
        """A session (SQLAlchemy's arguments) sharing the factory's ``tree_cache``, if any.

        ``committer``, when the factory has one, lets a request join a group
        commit (:meth:`GroupCommitter.member`).
        """
        super().__init__(*args, **kwargs)
        self.tree_cache = tree_cache
        self.committer = committer
        self.group: Group | None = None
        """The group whose transaction this unit of work runs in, as a savepoint."""
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
        """Send a waiting ledger append, flush the ORM's changes, insert the queued rows.

        In that order on both databases, as at COMMIT on PostgreSQL (the ORM's
        changes go just before that pipeline, which the append leads).
        """
        sqlpipeline.send_pending_append(self)
        super().flush(objects)
        if self._at_commit:
            queued, self._at_commit = self._at_commit, []
            conn = self.connection()
            for stmt, rows in queued:  # on the DB-API cursor (app.ledger.sqlread)
                sqlread.execute_many(conn, stmt, rows)

    def commit(self) -> None:
        """Commit the transaction with its queued rows: the one commit path of the service.

        PostgreSQL: the ORM's changes are flushed, then the waiting ledger
        append, the queued rows and ``COMMIT`` go in one psycopg pipeline
        (``ledger.sql.pipeline.commit_with_append``; with an append, that
        COMMIT does not wait for the disk, and a second transaction flushes
        the WAL past it before this returns); SQLAlchemy's own commit then
        finds the transaction ended. SQLite: the ORM's changes and the
        rows are inserted, then the transaction commits; on the server's engine
        (``shared_flush``) the WAL is flushed after the connection is back in the
        pool, before this returns (``app.ledger.walflush``).
        """
        with walflush.flushed_after():
            self._commit()

    def _commit(self) -> None:
        if self._at_commit or sqlpipeline.PENDING in self.info:
            conn = super().connection()
            if self.group is not None:  # a savepoint: its rows go in before it is released
                self.flush()
            elif conn.dialect.name == "postgresql" and not conn.invalidated:
                pending = sqlpipeline.take_pending_append(self)
                queued, self._at_commit = self._at_commit, []
                super().flush()  # not ours: the append goes after the ORM's rows
                sqlpipeline.commit_with_append(conn, pending, queued)
            else:  # a lost connection fails in flush, as it should
                self.flush()
        super().commit()

    def connection(self, *args: Any, **kwargs: Any) -> Connection:
        """The transaction's connection, a waiting ledger append sent on it first."""
        sqlpipeline.send_pending_append(self)
        return super().connection(*args, **kwargs)

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        """``Session.execute``, a waiting ledger append sent first (the statement may read it)."""
        sqlpipeline.send_pending_append(self)
        return super().execute(*args, **kwargs)

    def scalar(self, *args: Any, **kwargs: Any) -> Any:
        """``Session.scalar``, a waiting ledger append sent first."""
        sqlpipeline.send_pending_append(self)
        return super().scalar(*args, **kwargs)

    def scalars(self, *args: Any, **kwargs: Any) -> Any:
        """``Session.scalars``, a waiting ledger append sent first."""
        sqlpipeline.send_pending_append(self)
        return super().scalars(*args, **kwargs)

    def rollback(self) -> None:
        """Roll back, dropping the rows queued for the commit (and a waiting append)."""
        self._at_commit = []
        sqlpipeline.drop_pending_append(self)
        super().rollback()

    def close(self) -> None:
        """Close (rolling back anything open), dropping the rows queued for the commit."""
        self._at_commit = []
        sqlpipeline.drop_pending_append(self)
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


class GroupCommitFailed(Exception):
    """The COMMIT of a group failed, or no turn came: nothing of the request is durable."""


class Group:
    """One transaction on one connection that several requests' units of work share.

    Each member runs as a savepoint of it (its own rollback undoes only its
    own actions and entries); the last member commits it for them all.
    """

    def __init__(self, conn: Connection) -> None:
        """A group on ``conn``, its transaction begun."""
        self.conn = conn
        self.members = 0
        self.done = threading.Event()
        self.error: BaseException | None = None


class Timing:
    """Benchmarks only: how long requests waited in the group committer, summed.

    Written (not thread-safe to the last digit: counters of a benchmark) by the
    thread that commits a group, as one line of ``writer_wait_s commit_wait_s
    members groups`` replacing the file's content.
    """

    def __init__(self, path: Path) -> None:
        """Counters written to ``path``."""
        self.path = path
        self.writer_wait_s = 0.0
        """Time requests waited for their turn at the group's writer (the ledger head)."""
        self.commit_wait_s = 0.0
        """Time members that handed the writer on waited for their group's COMMIT."""
        self.members = 0
        self.groups = 0

    def written(self, members: int) -> None:
        """Count a committed group of ``members`` and write the counters."""
        self.members += members
        self.groups += 1
        self.path.write_text(f"{self.writer_wait_s:.6f} {self.commit_wait_s:.6f} "
                             f"{self.members} {self.groups}\n")


class GroupCommitter:
    """Group commit: concurrent requests' transactions as savepoints of one, one COMMIT.

    docs/adr/0023-group-commit.md. A request thread joins the open group (or
    opens one: a connection from the pool, ``BEGIN``), holding the group's
    writer lock while its unit of work runs as a savepoint; when it is done,
    if another request waits for the writer and the group has room, it hands
    the writer over and waits for the group's COMMIT; otherwise it commits the
    group, wakes every member, and gives the connection back. So the head
    lock is taken once per group, and one COMMIT (one fsync) makes every
    member durable; a request is answered only after that COMMIT, and a failed
    COMMIT fails every member.
    """

    def __init__(self, engine: Engine, max_members: int = 32, wait_seconds: float = 10.0, *,
                 timing: Path | None = None) -> None:
        """Groups on connections of ``engine``, of at most ``max_members`` requests.

        A request waits at most ``wait_seconds`` for the group's writer (as long as
        for a pooled connection: ``app.ledger.engine``), then fails, nothing done.
        ``timing`` (benchmarks only): a file to which the committing thread writes
        the counters of :class:`Timing` after each group.
        """
        self.engine = engine
        self.max_members = max_members
        self.wait_seconds = wait_seconds
        self.timing = Timing(timing) if timing is not None else None
        self._writer = threading.Lock()
        self._state = threading.Lock()
        self._waiting = 0
        self._group: Group | None = None

    @contextmanager
    def member(self, work: UnitOfWork) -> Iterator[Group]:
        """Run ``work`` (not begun yet) as a savepoint of the open group until the block ends.

        On leaving, waits for the group's COMMIT; raises :class:`GroupCommitFailed`
        if it failed (the block's own exception, if any, is then superseded).
        """
        with self._state:
            self._waiting += 1
        asked = time.perf_counter() if self.timing is not None else 0.0
        acquired = self._writer.acquire(timeout=self.wait_seconds)
        if self.timing is not None:
            self.timing.writer_wait_s += time.perf_counter() - asked
        with self._state:
            self._waiting -= 1
            if not acquired:  # handed over as the wait ended? Then this turn is ours.
                acquired = self._writer.acquire(blocking=False)
        if not acquired:
            raise GroupCommitFailed(f"no turn at the writer within {self.wait_seconds:g} s")
        try:
            group = self._group
            if group is None:
                conn = self.engine.connect()
                try:
                    conn.begin()
                except BaseException:
                    conn.close()
                    raise
                group = self._group = Group(conn)
        except BaseException:
            self._writer.release()
            raise
        group.members += 1
        work.bind = group.conn
        work.join_transaction_mode = "create_savepoint"
        work.group = group
        try:
            yield group
        finally:
            work.group = None
            self._leave(group)
            if group.error is not None:  # supersedes the member's own outcome
                raise GroupCommitFailed("the group's COMMIT failed") from group.error

    def _leave(self, group: Group) -> None:
        """Hand the writer to the next member, or commit the group; wait for its COMMIT."""
        with self._state:  # decided and handed over under one lock with the waiters' count
            handed = self._waiting > 0 and group.members < self.max_members
            if handed:
                self._writer.release()
            else:
                self._group = None
        if handed:
            handed_at = time.perf_counter() if self.timing is not None else 0.0
            group.done.wait()
            if self.timing is not None:
                self.timing.commit_wait_s += time.perf_counter() - handed_at
            return
        try:
            group.conn.commit()
        except BaseException as exc:
            group.error = exc
            # On a lost connection the database rolled back by itself.
            with contextlib.suppress(Exception):
                group.conn.rollback()
        finally:
            try:
                group.conn.close()
            finally:
                group.done.set()
                if self.timing is not None:
                    self.timing.written(group.members)
                self._writer.release()


def make_session_factory(engine: Engine, tree_cache: TreeCache | None = None, *,
                         group_commit: bool = False,
                         timing_dir: Path | None = None) -> sessionmaker[UnitOfWork]:
    """A factory of units of work on ``engine``; they never expire objects on commit.

    ``tree_cache`` (one per database, so per engine) lets the ledger serve
    proofs from memory: every unit of work of the factory shares it.
    ``group_commit`` gives the factory a :class:`GroupCommitter`, which the
    route class (``app.ledger.route``) uses for synchronous endpoints;
    ``timing_dir`` (benchmarks) receives its counters, a file per process.
    """
    timing = timing_dir / str(os.getpid()) if timing_dir is not None else None
    committer = GroupCommitter(engine, timing=timing) if group_commit else None
    return sessionmaker(bind=engine, class_=UnitOfWork, expire_on_commit=False,
                        tree_cache=tree_cache, committer=committer)


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
