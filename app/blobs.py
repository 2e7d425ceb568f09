"""The blob store: ciphertext streams addressed by their SHA-256.

:class:`BlobStorage` is what the routes, the submission and the pruning use;
two stores provide it, chosen by ``CADENA_BLOB_STORE``: :class:`BlobStore`
here (``directory``, the default: files under the data directory, described
below) and ``app.blob_db.DatabaseBlobStore`` (``database``: chunked rows in
PostgreSQL, which several API hosts share). Both give the same guarantees.

A blob lives at ``<data_dir>/blobs/ab/cd/<hex>``. A write streams into a
temporary file in that same directory while hashing (starting the disk's
write-back every few MiB, :class:`streamio.WritebackPacer`), fsyncs it, renames it
into place (atomic on POSIX) and fsyncs the directory, so a blob is either
absent or complete and durable — never partial, even across a crash
(DESIGN.md invariant 4). Nothing is ever read whole into memory. Blobs hold
only ciphertext: the server cannot read them (invariant 1).

Errors (all :class:`~app.errors.CadenaError`): ``ContentTooLarge`` (413),
``BlobDigestMismatch`` (422), ``InsufficientStorage`` (507), and
``RangeNotSatisfiable`` (416) for reads. Every failed write removes its
temporary file.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import re
import tempfile
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, BinaryIO, Protocol

import anyio
from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse
from starlette.types import Send

from app.datadir import make_private_dir
from app.errors import CadenaError
from streamio import WritebackPacer

SHA256_PATTERN = r"^[0-9a-f]{64}$"
_SHA256 = re.compile(SHA256_PATTERN)
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
READ_CHUNK = 256 * 1024
SEND_CHUNK = 1 << 20
"""Bytes read per worker-thread call when a blob is served (:meth:`BlobStore.stream`)."""
WRITE_BATCH = 1 << 20
"""Received bytes handed to the writing thread at a time (one ciphertext chunk)."""
_FULL_DISK = {errno.ENOSPC, errno.EDQUOT}


class ContentTooLarge(CadenaError):
    """The request body exceeds the configured size limit."""

    status, code, title = 413, "too-large", "Content too large"


class BlobDigestMismatch(CadenaError):
    """The uploaded bytes do not hash to the digest they were uploaded under."""

    status, code, title = 422, "digest-mismatch", "Digest mismatch"


class InsufficientStorage(CadenaError):
    """The disk is full; nothing was kept."""

    status, code, title = 507, "insufficient-storage", "Insufficient storage"


class RangeNotSatisfiable(CadenaError):
    """The requested byte range lies outside the blob."""

    status, code, title = 416, "range-not-satisfiable", "Range not satisfiable"


@dataclass(frozen=True)
class StoredBlob:
    """A blob in the store: its digest, its size and whether this write created it."""

    sha256: str
    size: int
    created: bool


@dataclass(frozen=True)
class ByteRange:
    """An inclusive byte range ``first..last`` of a representation of ``size`` bytes."""

    first: int
    last: int
    size: int

    @property
    def length(self) -> int:
        """Number of bytes in the range."""
        return self.last - self.first + 1

    @property
    def content_range(self) -> str:
        """The ``Content-Range`` header value (RFC 9110 §14.4)."""
        return f"bytes {self.first}-{self.last}/{self.size}"


class BlobSink(Protocol):
    """One streaming write of a blob: nothing is visible before :meth:`commit` returns."""

    size: int

    def write(self, chunk: bytes) -> None:
        """Append ``chunk`` (``ContentTooLarge``, ``InsufficientStorage``)."""

    def write_all(self, chunks: Sequence[bytes]) -> None:
        """Append each of ``chunks`` in order."""

    def commit(self) -> StoredBlob:
        """Check the digest (``BlobDigestMismatch``) and make the blob durable and visible."""

    def abort(self) -> None:
        """Drop what was written (safe to call more than once, and after :meth:`commit`)."""


class BlobStorage(Protocol):
    """A content-addressed store of ciphertext blobs (directory or database)."""

    def size(self, sha256: str) -> int | None:
        """The size of the stored blob, or ``None`` if it is absent."""

    def refresh(self, sha256: str) -> int | None:
        """:meth:`size`, after restarting the blob's prune grace period."""

    def writer(self, sha256: str, max_bytes: int) -> BlobSink:
        """Start writing the blob ``sha256`` of at most ``max_bytes``."""

    def read(self, sha256: str, byte_range: ByteRange | None = None) -> Iterator[bytes]:
        """Yield the blob (or ``byte_range`` of it) in bounded chunks."""

    def stream(self, sha256: str, byte_range: ByteRange | None = None
               ) -> AsyncGenerator[bytes, None]:
        """Yield the blob (or ``byte_range`` of it) for a response, in constant memory."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _full_disk(exc: OSError) -> bool:
    return exc.errno in _FULL_DISK


def refuse_past_limit(size: int, chunks: Sequence[bytes], limit: int,
                      abort: Callable[[], None]) -> None:
    """Abort the upload and raise :class:`ContentTooLarge` if ``chunks`` would take it past
    ``limit`` bytes (every blob sink checks before it writes)."""
    if size + sum(len(c) for c in chunks) > limit:
        abort()
        raise ContentTooLarge(f"a blob may hold at most {limit} bytes")


class BlobWriter:
    """One streaming write of a blob expected to hash to ``expected``.

    Thread-safe: :meth:`write`, :meth:`commit` and :meth:`abort` hold a lock,
    so an abort from the event loop waits for a write still running in a
    worker thread instead of closing the file under it.
    """

    def __init__(self, target: Path, expected: str, max_bytes: int) -> None:
        self._target = target
        self._expected = expected
        self._max = max_bytes
        self._hash = hashlib.sha256()
        self._lock = threading.Lock()
        self.size = 0
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
        self._pacer = WritebackPacer(fd)  # so that commit's fsync finds little to flush
        self._fd: int | None = fd
        self._tmp: Path | None = Path(name)

    def write(self, chunk: bytes) -> None:
        """Append ``chunk``; raise (and clean up) past the size limit or on a full disk."""
        self.write_all((chunk,))

    def write_all(self, chunks: Sequence[bytes]) -> None:
        """Append each of ``chunks`` in order (as :meth:`write`, one lock and check)."""
        with self._lock:
            refuse_past_limit(self.size, chunks, self._max, self._abort)
            if self._fd is None:
                raise RuntimeError("write after the writer was closed")
            try:
                for chunk in chunks:
                    self._hash.update(chunk)
                    self.size += len(chunk)
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(self._fd, view):]
                    self._pacer.wrote(len(chunk))
            except OSError as exc:
                self._fail(exc)

    def commit(self) -> StoredBlob:
        """Check the digest, fsync, rename into place and fsync the directory."""
        with self._lock:
            if self._hash.hexdigest() != self._expected:
                self._abort()
                raise BlobDigestMismatch("the uploaded bytes do not hash to the blob id")
            if self._fd is None or self._tmp is None:
                raise RuntimeError("commit after the writer was closed")
            try:
                os.fsync(self._fd)
                os.close(self._fd)
                self._fd = None
                created = not self._target.exists()
                if created:
                    os.replace(self._tmp, self._target)
                    self._tmp = None
                    _fsync_dir(self._target.parent)
            except OSError as exc:
                self._fail(exc)
            self._abort()  # removes the temporary file when the blob already existed
            return StoredBlob(self._expected, self.size, created)

    def abort(self) -> None:
        """Close and remove the temporary file (safe to call more than once)."""
        with self._lock:
            self._abort()

    def _abort(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None

    def _fail(self, exc: OSError) -> None:
        self._abort()
        if _full_disk(exc):
            raise InsufficientStorage("the blob store is full; nothing was kept") from exc
        raise exc


async def receive_blob(body: AsyncIterator[bytes], writer: BlobSink) -> StoredBlob:
    """Write ``body`` through ``writer`` and commit it; abort on any failure.

    Receiving and writing overlap: bytes are gathered into batches of about
    :data:`WRITE_BATCH`, and while a worker thread hashes and writes one
    batch the event loop receives the next (at most one batch in flight, so
    memory stays at a few MiB whatever the size).
    """
    pending: asyncio.Future[None] | None = None
    batch: list[bytes] = []
    gathered = 0
    try:
        async for chunk in body:
            batch.append(chunk)
            gathered += len(chunk)
            if gathered >= WRITE_BATCH:
                if pending is not None:
                    await pending
                pending = asyncio.ensure_future(run_in_threadpool(writer.write_all, batch))
                batch, gathered = [], 0
        if pending is not None:
            await pending
        await run_in_threadpool(writer.write_all, batch)
        return await run_in_threadpool(writer.commit)
    finally:
        if pending is not None:  # observe its outcome, so that no error goes unreported
            pending.add_done_callback(lambda done: done.cancelled() or done.exception())
        writer.abort()  # waits for a write in flight (the writer's lock)


class BlobStore:
    """Content-addressed ciphertext files under ``root`` (the directory :class:`BlobStorage`)."""

    def __init__(self, root: Path, *, in_database: bool = False) -> None:
        self.root = root
        self.in_database = in_database
        """Whether the deployment keeps its blobs in the database instead
        (``CADENA_BLOB_STORE=database``): then a database snapshot covers them,
        and a backup copies no file from here (:mod:`app.backup`)."""

    def path(self, sha256: str) -> Path:
        """Where the blob ``sha256`` lives (``ab/cd/<hex>``)."""
        if not _SHA256.fullmatch(sha256):
            raise ValueError("a blob id is 64 lowercase hex digits")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def size(self, sha256: str) -> int | None:
        """The size of the stored blob, or ``None`` if it is absent."""
        try:
            return self.path(sha256).stat().st_size
        except FileNotFoundError:
            return None

    def refresh(self, sha256: str) -> int | None:
        """:meth:`size`, after setting the blob's time to now (it was uploaded again)."""
        with contextlib.suppress(FileNotFoundError):
            os.utime(self.path(sha256))
        return self.size(sha256)

    def writer(self, sha256: str, max_bytes: int) -> BlobWriter:
        """Start writing the blob ``sha256`` (its directories are made durable first)."""
        target = self.path(sha256)
        try:
            self._make_dirs(target.parent)
            return BlobWriter(target, sha256, max_bytes)
        except OSError as exc:
            if _full_disk(exc):
                raise InsufficientStorage("the blob store is full") from exc
            raise

    def read(self, sha256: str, byte_range: ByteRange | None = None) -> Iterator[bytes]:
        """Yield the blob (or ``byte_range`` of it) in chunks of at most 256 KiB."""
        first = 0 if byte_range is None else byte_range.first
        remaining = None if byte_range is None else byte_range.length
        with self.path(sha256).open("rb") as handle:
            handle.seek(first)
            while remaining is None or remaining > 0:
                chunk = handle.read(READ_CHUNK if remaining is None
                                    else min(READ_CHUNK, remaining))
                if not chunk:
                    return
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk

    async def stream(self, sha256: str, byte_range: ByteRange | None = None
                     ) -> AsyncGenerator[bytes, None]:
        """Yield the blob (or ``byte_range`` of it) for a response, reading one chunk ahead.

        Reads of up to :data:`SEND_CHUNK` bytes run in a worker thread, the
        next one while the event loop sends the last, so the disk and the
        socket work at the same time; memory stays at two chunks.
        """
        remaining = None if byte_range is None else byte_range.length
        handle = await run_in_threadpool(self.path(sha256).open, "rb")

        def read() -> bytes:
            return handle.read(SEND_CHUNK if remaining is None else min(SEND_CHUNK, remaining))

        ahead: asyncio.Future[bytes] | None = None
        try:
            if byte_range is not None:
                handle.seek(byte_range.first)  # no I/O: only moves the file position
            ahead = asyncio.ensure_future(run_in_threadpool(read))
            while ahead is not None:
                chunk = await ahead
                ahead = None
                if remaining is not None:
                    remaining -= len(chunk)
                if chunk and remaining != 0:
                    ahead = asyncio.ensure_future(run_in_threadpool(read))
                if chunk:
                    yield chunk
        finally:
            if ahead is None:
                handle.close()
            else:  # a read in flight: close the file when it ends (and observe its outcome)
                ahead.add_done_callback(lambda done: _close_after(done, handle))

    def _make_dirs(self, directory: Path) -> None:
        missing = []
        probe = directory
        while not probe.exists():
            missing.append(probe)
            probe = probe.parent
        for path in reversed(missing):
            make_private_dir(path)
            _fsync_dir(path.parent)


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The single byte range asked for by a ``Range`` header (RFC 9110 §14.1.2).

    ``None`` means "send everything": no header, another unit, several
    ranges or an invalid range (which RFC 9110 §14.2 lets a server ignore).
    A valid range that selects no byte raises :class:`RangeNotSatisfiable`.
    """
    match = _RANGE.fullmatch(header.strip()) if header else None
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first_text, last_text = match.groups()
    if first_text == "":  # suffix range: the last N bytes
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            raise _unsatisfiable(size)
        return ByteRange(max(0, size - suffix), size - 1, size)
    first = int(first_text)
    if last_text and int(last_text) < first:
        return None
    if first >= size:
        raise _unsatisfiable(size)
    last = min(int(last_text), size - 1) if last_text else size - 1
    return ByteRange(first, last, size)


def _unsatisfiable(size: int) -> RangeNotSatisfiable:
    return RangeNotSatisfiable(f"the stream has {size} bytes", size=size)


async def in_memory(data: bytes, byte_range: ByteRange | None = None
                    ) -> AsyncGenerator[bytes, None]:
    """Yield ``data`` (or ``byte_range`` of it) for a response, as :meth:`BlobStore.stream`.

    For a small stream kept in its database row (sent inline with its envelope).
    """
    if byte_range is not None:
        data = data[byte_range.first:byte_range.last + 1]
    if data:
        yield data


def _close_after(read: asyncio.Future[bytes], handle: BinaryIO) -> None:
    handle.close()
    if not read.cancelled():
        read.exception()  # retrieved, so that asyncio does not report it as lost


class BlobResponse(StreamingResponse):
    """A response streaming :meth:`BlobStore.stream`, which closes it however it ends.

    Starlette leaves an async generator suspended when the client goes away
    (the sending task is cancelled); this one is closed at once, shielded, so
    its file is closed then and not whenever the garbage collector runs.
    """

    def __init__(self, chunks: AsyncGenerator[bytes, None], status_code: int,
                 headers: Mapping[str, str]) -> None:
        """Stream ``chunks`` as ``application/octet-stream``."""
        super().__init__(chunks, status_code=status_code, headers=headers,
                         media_type="application/octet-stream")
        self._chunks = chunks

    async def stream_response(self, send: Send) -> None:
        """Send every chunk, then close the generator whatever happened."""
        try:
            await super().stream_response(send)
        finally:
            with anyio.CancelScope(shield=True):
                await self._chunks.aclose()


async def get_blob_store(request: Request) -> BlobStorage:
    """The application's blob store (``app.blob_db.make_blob_store``, built with the app).

    ``async``: it does no I/O, so it runs on the event loop; a plain function
    would cost every submit a second hop to a worker thread (issue 21).
    """
    store: BlobStorage = request.app.state.blob_store
    return store


BlobStoreDep = Annotated[BlobStorage, Depends(get_blob_store)]
