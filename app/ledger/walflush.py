"""SQLite: commits that do not wait for the disk, and one fsync of the WAL shared by them.

docs/adr/0035-sqlite-shared-wal-flush.md. With ``synchronous=FULL`` every
COMMIT fsyncs the write-ahead log while its connection, the process's only
one (``app.ledger.engine``), is held: every other request of the process
waits for that disk flush before it can start. The serving engine runs
``synchronous=NORMAL`` instead (a COMMIT writes the WAL's frames, not yet
flushed; SQLite's WAL stays consistent after any crash, it may only lose
the last transactions) and makes each commit durable itself, before the
committer goes on: :meth:`WalFlush.flush` fsyncs the ``-wal`` file, and a
flush that starts after a commit's frames were written covers that commit
and every one before it, so concurrent committers share one fsync.
The flush is ``fdatasync``, as SQLite's own WAL sync on Linux: it writes the
file's data and whatever metadata reading it back needs (its size, its
blocks), not its modification time, which on ext4 cost a journal commit at
every flush (docs/adr/0044). A new ``-wal`` file's directory entry is
flushed once with ``fsync`` of the directory.

What goes through :class:`FlushedConnection` (every connection of an engine
made with ``shared_flush=True``):

- a COMMIT outside :func:`flushed_after`: flushed before ``commit()``
  returns (as ``synchronous=FULL`` would, the connection still held);
- a COMMIT inside :func:`flushed_after` (the unit of work's commit,
  ``app.ledger.unit_of_work``): flushed when that block ends, after
  SQLAlchemy has given the connection back to the pool, so the next request
  runs while this one waits for the disk.

Either way nothing that committed is answered before it is on disk
(invariant 4). A failed fsync breaks the flush for good: the kernel may have
dropped the pages it could not write, and a later fsync that succeeds would
not bring them back, so every commit after it fails too (the operator
restarts, and SQLite recovers from the WAL that is on disk).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class WalFlushFailed(OSError):
    """The write-ahead log could not be flushed: a commit's durability is unknown."""


class WalFlush:
    """The fsync of one database's ``-wal`` file, shared by the commits of a process.

    Each commit takes a ticket once its frames are written (:meth:`committed`);
    :meth:`flush` returns once a fsync that started after that ticket was
    taken has succeeded. One thread flushes at a time; the others wait for
    it and, if it started too early for them, one of them flushes next.
    """

    def __init__(self, database: Path) -> None:
        """The flush for the SQLite database file ``database`` (its WAL is ``<name>-wal``)."""
        self.wal = Path(f"{database}-wal")
        self.directory = database.parent
        self._changed = threading.Condition()
        self._written = 0
        """Tickets given: commits whose frames are written."""
        self._durable = 0
        """The highest ticket a finished fsync covers."""
        self._flushing = False
        self._broken: OSError | None = None
        self._wal_identity: tuple[int, int] | None = None
        """The ``-wal`` file whose directory entry was last flushed (device, inode)."""
        self.fsyncs = 0
        """fsyncs made so far (tests and benchmarks read it)."""

    @property
    def broken(self) -> bool:
        """Whether a fsync failed: no commit can be made durable any more (``/readyz``)."""
        return self._broken is not None

    @property
    def durable(self) -> int:
        """The highest ticket known to be on disk."""
        return self._durable

    def committed(self) -> int:
        """A ticket for a commit whose frames have just been written."""
        with self._changed:
            self._written += 1
            return self._written

    def flush(self, ticket: int) -> None:
        """Return once the commit of ``ticket`` is on disk; :class:`WalFlushFailed` if unknown."""
        with self._changed:
            while True:
                if self._broken is not None:
                    raise WalFlushFailed(f"the write-ahead log could not be flushed earlier "
                                         f"({self._broken}); restart the server") from self._broken
                if self._durable >= ticket:
                    return
                if not self._flushing:
                    break
                self._changed.wait()
            self._flushing = True
            covers = self._written  # every ticket given so far: its frames are written
        flushed = False
        try:
            self._fsync()
            flushed = True
        except OSError as exc:
            with self._changed:
                self._broken = exc
            raise WalFlushFailed(f"the write-ahead log could not be flushed: {exc}") from exc
        finally:  # whatever ended the fsync, the next waiter may flush
            with self._changed:
                if flushed:
                    self._durable = max(self._durable, covers)
                self._flushing = False
                self._changed.notify_all()

    def _fsync(self) -> None:
        try:
            fd = os.open(self.wal, os.O_RDONLY)
        except FileNotFoundError:
            # SQLite removes the WAL only after checkpointing all of it into the
            # database file, which synchronous=NORMAL flushes after a checkpoint.
            return
        try:
            os.fdatasync(fd)
            stat = os.fstat(fd)
        finally:
            os.close(fd)
        self.fsyncs += 1
        identity = (stat.st_dev, stat.st_ino)
        if identity != self._wal_identity:
            # A new -wal file: its directory entry must be on disk too (SQLite
            # flushes the directory at a new WAL's first sync, which NORMAL defers).
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
            self._wal_identity = identity


class _Deferred(threading.local):
    tickets: list[tuple[WalFlush, int]] | None = None


_deferred = _Deferred()


@contextmanager
def flushed_after() -> Iterator[None]:
    """Commits of this thread in the block are flushed as it ends, not in ``commit()``.

    For a caller that gives its connection back between the two (the unit of
    work). Nested blocks flush at the outermost one's end; an exception in the
    block still flushes what committed in it, then propagates.
    """
    if _deferred.tickets is not None:
        yield
        return
    tickets: list[tuple[WalFlush, int]] = []
    _deferred.tickets = tickets
    try:
        yield
    finally:
        _deferred.tickets = None
        for flush, ticket in tickets:
            flush.flush(ticket)


class FlushedConnection(sqlite3.Connection):
    """A sqlite3 connection whose COMMIT is made durable by its engine's :class:`WalFlush`."""

    wal_flush: WalFlush | None = None

    def commit(self) -> None:
        """Commit; flush the WAL now, or at the end of the thread's :func:`flushed_after`."""
        open_before = self.in_transaction
        super().commit()
        flush = self.wal_flush
        if flush is None or not open_before:
            return
        ticket = flush.committed()
        if _deferred.tickets is not None:
            _deferred.tickets.append((flush, ticket))
        else:
            flush.flush(ticket)


def attach(dbapi_connection: Any, flush: WalFlush) -> None:
    """Give a new connection of the engine its flush (a ``connect`` listener)."""
    if not isinstance(dbapi_connection, FlushedConnection):
        raise TypeError("a shared WAL flush needs connections made by FlushedConnection")
    dbapi_connection.wal_flush = flush
