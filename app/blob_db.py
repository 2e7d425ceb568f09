"""The database blob store: ciphertext in PostgreSQL, shared by every API host.

``CADENA_BLOB_STORE=database`` keeps blobs in the database instead of the data
directory, so that several ``cadena-server serve`` hosts on one PostgreSQL
database serve each other's uploads (docs/adr/0024-blobs-in-postgresql-chunked-rows.md).
A blob is cut into rows of :data:`CHUNK_BYTES` (``blob_chunks``) and listed in
``blobs`` (size, chunk size, last upload).

A write is one transaction on a connection of its own: the chunks are inserted
as they arrive, each copied once into one reused row buffer and sent in
pipeline mode without waiting for the last row's answer (memory stays at a row
or two; docs/adr/0029-blob-rows-pipelined-from-one-buffer.md), and the
``blobs`` row only after the digest checked, then COMMIT (durable: PostgreSQL
syncs its WAL). A partial, refused or interrupted upload is rolled back,
even by a crash: never visible (DESIGN.md invariant 4). Two uploads of one
digest at once: the second is refused (409, ``upload-in-progress``) rather
than left waiting on the first's rows, which would hold a request thread.

Reads fetch one chunk (or the part of it a range needs) per query, from a
short transaction each, so a slow client holds no connection. The store has
engines of its own (transfers: :data:`POOL_SIZE` + :data:`POOL_OVERFLOW`
connections per process; lookups: :data:`LOOKUP_POOL`), so long uploads never
starve the requests' pool, nor a submission's stream check (under the ledger
head lock) wait for a transfer. A transfer that finds no connection free is
answered 503 (``unavailable``) and keeps nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import select as io_select
import threading
from collections.abc import AsyncGenerator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.pq.abc import PGconn
from sqlalchemy import Connection, Engine, delete, func, insert, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.blobs import (
    SEND_CHUNK,
    BlobDigestMismatch,
    BlobStorage,
    BlobStore,
    ByteRange,
    InsufficientStorage,
    StoredBlob,
    refuse_past_limit,
)
from app.errors import CadenaError, Unavailable
from app.ledger import make_engine, now
from app.models.blob import Blob, BlobChunk
from app.settings import Settings

CHUNK_BYTES = 1 << 20
"""Bytes per ``blob_chunks`` row (the last row of a blob may hold fewer)."""
POOL_SIZE = 2
POOL_OVERFLOW = 14
"""Connections of the store's transfer engine: at most 16 blob transfers at once per process;
past them (after the pool's wait) 503."""
LOOKUP_POOL = 2
"""Connections of the store's lookup engine (sizes, last uploads): a submission checks its
streams under the ledger head lock, and must never wait there for a transfer's connection."""
_DISK_FULL = "53100"
_INSERT = "INSERT INTO blob_chunks (sha256, seq, data) VALUES (%s, %s, %b)"
_SLICE = "SELECT substring(data FROM %s FOR %s) FROM blob_chunks WHERE sha256 = %s AND seq = %s"


class UploadInProgress(CadenaError):
    """Another upload of the same blob is under way; nothing was kept."""

    status, code, title = 409, "upload-in-progress", "Upload in progress"


def blob_store_conflict(settings: Settings) -> str | None:
    """Why ``settings`` cannot have the blob store it names, or ``None``."""
    if settings.blob_store == "database" and not settings.resolved_database_url().startswith(
            ("postgresql", "postgres:")):
        return ("CADENA_BLOB_STORE=database needs PostgreSQL (CADENA_DATABASE_URL="
                "postgresql://...): on SQLite the blobs stay in the data directory "
                "(CADENA_BLOB_STORE=directory)")
    return None


def make_blob_store(settings: Settings) -> BlobStorage:
    """The blob store ``settings`` name; ``ValueError`` for ``database`` on SQLite."""
    conflict = blob_store_conflict(settings)
    if conflict is not None:
        raise ValueError(conflict)
    if settings.blob_store == "database":
        url = settings.resolved_database_url()
        return DatabaseBlobStore(
            make_engine(url, pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW),
            lookups=make_engine(url, pool_size=LOOKUP_POOL, max_overflow=LOOKUP_POOL))
    return BlobStore(settings.data_dir / "blobs")


def close_blob_store(store: BlobStorage) -> None:
    """Release what the store holds (the database store's connections)."""
    if isinstance(store, DatabaseBlobStore):
        store.close()


@contextlib.contextmanager
def _busy_is_503() -> Iterator[None]:
    try:
        yield
    except PoolTimeout as exc:
        raise Unavailable("every blob transfer connection is busy; try again") from exc


def _lock_key(sha256: str) -> int:
    return int.from_bytes(bytes.fromhex(sha256[:16]), "big", signed=True)


def _drain(pgconn: PGconn) -> None:
    """Wait until libpq has handed every queued byte to the socket.

    In pipeline mode ``execute`` returns once it has sent *some* of a query; a row
    left in libpq's buffer while the next is added would grow it by a row each time
    the server is slower than the upload. Reading what the server sends meanwhile
    keeps it from blocking on a full socket of answers (its results are processed
    when the pipeline ends).
    """
    while pgconn.flush():
        readable, _, _ = io_select.select((pgconn.socket,), (pgconn.socket,), ())
        if readable:
            pgconn.consume_input()


def _disk_full(exc: BaseException | None) -> bool:
    return getattr(exc, "sqlstate", None) == _DISK_FULL


class DatabaseBlobWriter:
    """One streaming write of a blob into the database (see the module docstring).

    Received bytes are copied once, into a row buffer of ``chunk_bytes``
    reused for every row; each full row is sent as an ``INSERT`` in pipeline
    mode, so this thread goes back to hashing and filling the next row while
    PostgreSQL stores the last (no wait for each row's answer; the socket's
    buffer bounds what is in flight). A row the database refuses fails the
    upload at the next row sent or at :meth:`commit`, and rolls it back whole.

    Thread-safe as :class:`app.blobs.BlobWriter`: an abort waits for a write
    still running in a worker thread.
    """

    def __init__(self, engine: Engine, expected: str, max_bytes: int, chunk_bytes: int) -> None:
        self._expected = expected
        self._max = max_bytes
        self._chunk = chunk_bytes
        self._hash = hashlib.sha256()
        self._lock = threading.Lock()
        self._row = bytearray()
        self._fill = 0
        self._seq = 0
        self._pipeline: contextlib.AbstractContextManager[psycopg.Pipeline] | None = None
        self.size = 0
        conn = engine.connect()
        try:
            conn.begin()
            # Keyed by the digest's first 64 bits (Cadena takes no other advisory lock):
            # two different blobs collide once in 2**64, and then wait for a retry.
            locked = conn.execute(select(func.pg_try_advisory_xact_lock(
                _lock_key(expected)))).scalar_one()
            if not locked:
                raise UploadInProgress("another upload of this blob is under way; try again "
                                       "when it ends")
            self._exists = conn.execute(select(Blob.size).where(
                Blob.sha256 == expected)).scalar_one_or_none() is not None
            if not self._exists:
                self._row = bytearray(chunk_bytes)
                raw = conn.connection.dbapi_connection
                assert isinstance(raw, psycopg.Connection)  # noqa: S101 (make_engine's driver)
                self._raw: psycopg.Connection[Any] = raw
                # One cursor for every row: a cursor keeps its last statement's
                # parameters, and in pipeline mode stays referenced until its answer
                # is read, so a cursor per row would hold a row each in flight.
                self._cursor: psycopg.Cursor[Any] = raw.cursor()
                self._pipeline = raw.pipeline()
                self._pipeline.__enter__()
        except BaseException:
            self._end_pipeline()
            conn.close()  # rolls back
            raise
        self._conn: Connection | None = conn

    def write(self, chunk: bytes) -> None:
        """Append ``chunk``; raise (and roll back) past the size limit or on a full disk."""
        self.write_all((chunk,))

    def write_all(self, chunks: Sequence[bytes]) -> None:
        """Append each of ``chunks`` in order, inserting every full chunk row."""
        with self._lock:
            refuse_past_limit(self.size, chunks, self._max, self._abort)
            if self._conn is None:
                raise RuntimeError("write after the writer was closed")
            for chunk in chunks:
                self._hash.update(chunk)
                self.size += len(chunk)
                if not self._exists:  # else the same bytes are stored: only the digest counts
                    self._fill_rows(chunk)

    def commit(self) -> StoredBlob:
        """Check the digest, insert the last chunk and the ``blobs`` row, COMMIT."""
        with self._lock:
            if self._hash.hexdigest() != self._expected:
                self._abort()
                raise BlobDigestMismatch("the uploaded bytes do not hash to the blob id")
            if self._conn is None:
                raise RuntimeError("commit after the writer was closed")
            if self._exists:
                self._abort()
                return StoredBlob(self._expected, self.size, created=False)
            if self._fill:
                self._insert(memoryview(self._row)[:self._fill])
            try:
                self._end_pipeline(raising=True)  # every row's answer, or the first refusal
            except psycopg.Error as exc:
                self._fail_driver(exc)
            try:
                self._conn.execute(insert(Blob).values(
                    sha256=self._expected, size=self.size, chunk_bytes=self._chunk,
                    stored_at=now()))
                self._conn.commit()
            except DBAPIError as exc:
                self._fail(exc)
            self._abort()
            return StoredBlob(self._expected, self.size, created=True)

    def abort(self) -> None:
        """Roll back and return the connection (safe to call more than once)."""
        with self._lock:
            self._abort()

    def _fill_rows(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:
            taken = min(len(view), self._chunk - self._fill)
            self._row[self._fill:self._fill + taken] = view[:taken]
            self._fill += taken
            view = view[taken:]
            if self._fill == self._chunk:
                self._insert(self._row)

    def _insert(self, data: bytearray | memoryview) -> None:
        # The driver's own cursor, the row sent in binary (%b); libpq copies it into its
        # output buffer before execute returns, so the row buffer is free again at once.
        try:
            self._cursor.execute(_INSERT, (self._expected, self._seq, data))
            _drain(self._raw.pgconn)
        except psycopg.Error as exc:
            self._fail_driver(exc)
        self._seq += 1
        self._fill = 0

    def _end_pipeline(self, *, raising: bool = False) -> None:
        """Leave pipeline mode: wait for every row sent; raise the first refusal if
        ``raising``, else drop it (the transaction is being rolled back anyway)."""
        if self._pipeline is not None:
            pipeline, self._pipeline = self._pipeline, None
            try:
                pipeline.__exit__(None, None, None)
            except psycopg.Error:
                if raising:
                    raise

    def _abort(self) -> None:
        self._row = bytearray()
        self._fill = 0
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                self._end_pipeline()
                if not self._exists:
                    self._cursor.close()
            finally:
                conn.close()  # rolls back an open transaction

    def _fail(self, exc: DBAPIError) -> None:
        self._abort()
        if _disk_full(exc.orig):
            raise InsufficientStorage("the blob store is full; nothing was kept") from exc
        raise exc

    def _fail_driver(self, exc: psycopg.Error) -> None:
        self._abort()
        if _disk_full(exc):
            raise InsufficientStorage("the blob store is full; nothing was kept") from exc
        raise exc


@dataclass(frozen=True)
class _Layout:
    size: int
    chunk_bytes: int


class DatabaseBlobStore:
    """Blobs as chunked rows in PostgreSQL (the ``database`` :class:`~app.blobs.BlobStorage`)."""

    def __init__(self, engine: Engine, chunk_bytes: int = CHUNK_BYTES, *,
                 lookups: Engine | None = None) -> None:
        self.engine = engine
        self.lookups = lookups or engine
        self.chunk_bytes = chunk_bytes

    def close(self) -> None:
        """Close the store's connections."""
        self.engine.dispose()
        self.lookups.dispose()

    def _layout(self, sha256: str) -> _Layout | None:
        with self.lookups.connect() as conn:
            row = conn.execute(select(Blob.size, Blob.chunk_bytes)
                               .where(Blob.sha256 == sha256)).one_or_none()
        return None if row is None else _Layout(row.size, row.chunk_bytes)

    def size(self, sha256: str) -> int | None:
        """The size of the stored blob, or ``None`` if it is absent."""
        layout = self._layout(sha256)
        return None if layout is None else layout.size

    def refresh(self, sha256: str) -> int | None:
        """:meth:`size`, after setting the blob's last upload to now (it was uploaded again)."""
        with self.lookups.begin() as conn:
            return conn.execute(update(Blob).where(Blob.sha256 == sha256)
                                .values(stored_at=now()).returning(Blob.size)
                                ).scalar_one_or_none()

    def writer(self, sha256: str, max_bytes: int) -> DatabaseBlobWriter:
        """Start writing the blob ``sha256`` (409 while another upload of it is under way)."""
        with _busy_is_503():
            return DatabaseBlobWriter(self.engine, sha256, max_bytes, self.chunk_bytes)

    def _pieces(self, sha256: str, byte_range: ByteRange | None
                ) -> Iterator[tuple[int, int, int]]:
        """``(seq, offset, length)`` of every read the blob (or range) needs, in order."""
        layout = self._layout(sha256)
        if layout is None:
            raise FileNotFoundError(f"no blob {sha256}")
        first = 0 if byte_range is None else byte_range.first
        end = layout.size if byte_range is None else byte_range.last + 1
        step = min(layout.chunk_bytes, SEND_CHUNK)
        position = first
        while position < end:
            seq, offset = divmod(position, layout.chunk_bytes)
            length = min(step, layout.chunk_bytes - offset, end - position)
            yield seq, offset, length
            position += length

    def _fetch(self, sha256: str, seq: int, offset: int, length: int) -> bytes:
        # Binary results: bytea as text is hex, twice the bytes and a decode (4x slower).
        with _busy_is_503(), self.engine.connect() as conn, \
                conn.connection.dbapi_connection.cursor(binary=True) as cursor:  # type: ignore[union-attr]
            cursor.execute(_SLICE, (offset + 1, length, sha256, seq))
            row = cursor.fetchone()  # the pool rolls the read back on return
        if row is None or len(row[0]) != length:  # pruned while being read
            raise FileNotFoundError(f"blob {sha256} is gone")
        data: bytes = row[0]
        return data

    def read(self, sha256: str, byte_range: ByteRange | None = None) -> Iterator[bytes]:
        """Yield the blob (or ``byte_range`` of it), one query per chunk."""
        for seq, offset, length in self._pieces(sha256, byte_range):
            yield self._fetch(sha256, seq, offset, length)

    async def stream(self, sha256: str, byte_range: ByteRange | None = None
                     ) -> AsyncGenerator[bytes, None]:
        """Yield the blob (or ``byte_range`` of it), fetching the next chunk while one is sent.

        Queries run in a worker thread; memory stays at two chunks.
        """
        pieces = await run_in_threadpool(lambda: list(self._pieces(sha256, byte_range)))
        ahead: asyncio.Future[bytes] | None = None
        try:
            for i in range(len(pieces)):
                if ahead is None:
                    ahead = asyncio.ensure_future(run_in_threadpool(self._fetch, sha256,
                                                                    *pieces[i]))
                chunk = await ahead
                ahead = (asyncio.ensure_future(run_in_threadpool(self._fetch, sha256,
                                                                 *pieces[i + 1]))
                         if i + 1 < len(pieces) else None)
                yield chunk
        finally:
            if ahead is not None:  # observe its outcome, so that no error goes unreported
                ahead.add_done_callback(lambda done: done.cancelled() or done.exception())


def delete_blobs(session: Session, digests: Sequence[str]) -> None:
    """Delete ``digests`` (rows and chunks) in ``session``'s transaction (pruning)."""
    if digests:
        session.execute(delete(BlobChunk).where(BlobChunk.sha256.in_(list(digests))))
        session.execute(delete(Blob).where(Blob.sha256.in_(list(digests))))
