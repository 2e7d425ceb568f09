"""Attachments on their way out: encrypted as they arrive from the browser, never plaintext.

The compose page sends each attachment as soon as it is chosen, as the raw
body of one request (the File itself, no multipart). :meth:`Spool.receive`
encrypts that body as it arrives with Cadena's streaming format
(``crypto.encrypt_stream``: ChaCha20-Poly1305 chunks) under a fresh key that
exists only in this process's memory, into a file of the profile's private
folder (0600 in a 0700 directory). Plaintext never touches the disk and
memory stays at a few chunks whatever the file's size.

When the packet is sent, :meth:`Spooled.source` gives the file to
:func:`client.transfer.send_packet` as a :class:`~client.transfer.StreamSource`:
each read decrypts it again, a chunk at a time (tags and digest checked), for
sealing and then for the upload's replay. The spooled file is deleted after
sending or when it is removed from the form, and the folder is emptied when
the desk's prosecutor pages are first used after the desk starts; a file left
by a desk that stopped is unreadable without its key, which died with the
process.
"""

from __future__ import annotations

import contextlib
import os
import queue
import secrets
import shutil
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, cast

import anyio.from_thread

from client.errors import UsageError
from client.transfer import StreamSource
from crypto import (
    DEFAULT_CHUNK_SIZE,
    CryptoError,
    StreamDigest,
    decrypt_stream,
    encrypt_stream,
)

PRIVATE_FILE, PRIVATE_DIR = 0o600, 0o700
QUEUED_CHUNKS = 4
"""Decrypted chunks a reader may have waiting (memory: this many chunks)."""


class TooLarge(UsageError):
    """An attachment is larger than the desk accepts."""


@dataclass(frozen=True)
class Spooled:
    """One attachment, encrypted on disk under a key held only here."""

    id: str
    name: str
    path: Path
    key: bytes
    plaintext: StreamDigest
    ciphertext: StreamDigest
    chunk_size: int

    def open(self) -> BinaryIO:
        """A reader of the plaintext, decrypted (and checked) chunk by chunk as it is read."""
        return cast(BinaryIO, PlainReader(self))

    def source(self) -> StreamSource:
        """The attachment as :func:`client.transfer.send_packet` takes it."""
        return StreamSource(self.name, self.plaintext.length, self.open)


class BodyReader:
    """A blocking reader over an async source of chunks (read from a worker thread)."""

    def __init__(self, next_chunk: Callable[[], Coroutine[Any, Any, bytes]],
                 limit: int) -> None:
        """Read by awaiting ``next_chunk`` (b"" at the end) on the event loop; at most ``limit``."""
        self._next = next_chunk
        self._buffer = bytearray()
        self._done = False
        self.limit = limit
        self.received = 0

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (fewer only at the end)."""
        while not self._done and (size < 0 or len(self._buffer) < size):
            chunk: bytes = anyio.from_thread.run(self._next)
            if not chunk:
                self._done = True
                break
            self.received += len(chunk)
            if self.received > self.limit:
                raise TooLarge(f"the attachment is larger than {self.limit} bytes")
            self._buffer += chunk
        return _take(self._buffer, size)


def _take(buffer: bytearray, size: int) -> bytes:
    """The first ``size`` bytes of ``buffer`` (all of them if ``size`` < 0), removed from it."""
    count = len(buffer) if size < 0 else min(size, len(buffer))
    out = bytes(buffer[:count])
    del buffer[:count]
    return out


class _Stopped(Exception):
    """The reader was closed before the decryption ended."""


class PlainReader:
    """Decrypts a spooled file in a thread, handing chunks over a small bounded queue."""

    def __init__(self, spooled: Spooled) -> None:
        """Start decrypting ``spooled``."""
        self._spooled = spooled
        self._queue: queue.Queue[bytes | BaseException | None] = queue.Queue(QUEUED_CHUNKS)
        self._buffer = bytearray()
        self._done = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="desk-spool", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        spooled = self._spooled
        try:
            with spooled.path.open("rb") as source:
                result = decrypt_stream(spooled.key, cast(BinaryIO, source), cast(BinaryIO, self),
                                        spooled.ciphertext, spooled.chunk_size)
            if result.plaintext != spooled.plaintext:
                raise UsageError(f"{spooled.name} changed on disk since it was received")
            self._put(None)
        except _Stopped:
            return
        except (CryptoError, OSError, UsageError) as exc:
            with contextlib.suppress(_Stopped):
                self._put(exc)

    def _put(self, item: bytes | BaseException | None) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                continue
        raise _Stopped

    def write(self, data: bytes) -> int:
        """Take one decrypted chunk (called by ``decrypt_stream`` in the thread)."""
        self._put(bytes(data))
        return len(data)

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes of plaintext (fewer only at the end)."""
        while not self._done and (size < 0 or len(self._buffer) < size):
            item = self._queue.get()
            if item is None:
                self._done = True
            elif isinstance(item, BaseException):
                self._done = True
                raise UsageError(f"{self._spooled.name} cannot be read back: {item}") from item
            else:
                self._buffer += item
        return _take(self._buffer, size)

    def close(self) -> None:
        """Stop the decryption (if it still runs) and drop what is buffered."""
        self._stop.set()
        self._buffer = bytearray()

    def __enter__(self) -> PlainReader:
        """Use as a context manager."""
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        """Close on leaving the block."""
        self.close()


class Spool:
    """The desk's outgoing attachments of one profile, each encrypted under its own key."""

    def __init__(self, directory: Path, *, limit: int) -> None:
        """Keep files in ``directory`` (created 0700, emptied); refuse any over ``limit`` bytes."""
        self.directory = directory
        self.limit = limit
        self._files: dict[str, dict[str, Spooled]] = {}
        self._lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        """Forget and delete every spooled file (lock, stop, start)."""
        with self._lock:
            self._files.clear()
        shutil.rmtree(self.directory, ignore_errors=True)

    def workdir(self) -> Path:
        """The spool's directory, made 0700 if missing (a send seals its packet in it).

        :meth:`clear` removes it (at start and at every lock): a packet sent with no
        attachment is the first to need it then.
        """
        self.directory.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
        self.directory.chmod(PRIVATE_DIR)
        return self.directory

    def receive(self, owner: str, name: str, body: BodyReader) -> Spooled:
        """Encrypt ``body`` into a new spooled file for session ``owner`` (blocking)."""
        file_id = secrets.token_urlsafe(12)
        path = self.workdir() / f"{file_id}.ct"
        key = secrets.token_bytes(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, PRIVATE_FILE)
        try:
            with os.fdopen(fd, "wb") as out:
                result = encrypt_stream(key, cast(BinaryIO, body), out, DEFAULT_CHUNK_SIZE)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        spooled = Spooled(file_id, name, path, key, result.plaintext, result.ciphertext,
                          DEFAULT_CHUNK_SIZE)
        with self._lock:
            self._files.setdefault(owner, {})[file_id] = spooled
        return spooled

    def get(self, owner: str, file_id: str) -> Spooled:
        """A file this session spooled; :class:`UsageError` if there is none by that id."""
        with self._lock:
            found = self._files.get(owner, {}).get(file_id)
        if found is None:
            raise UsageError("that attachment is no longer here: add it again")
        return found

    def take(self, owner: str, file_ids: list[str]) -> list[Spooled]:
        """Take these files out for one send: a second send of them (a double click, another
        tab) finds none. :class:`UsageError` if one is gone; then none is taken."""
        with self._lock:
            mine = self._files.get(owner, {})
            if not all(file_id in mine for file_id in file_ids):
                raise UsageError("that attachment is no longer here: add it again")
            return [mine.pop(file_id) for file_id in file_ids]

    def put_back(self, owner: str, taken: list[Spooled]) -> None:
        """Return files taken for a send that failed (the form can be sent again)."""
        with self._lock:
            self._files.setdefault(owner, {}).update((s.id, s) for s in taken)

    def discard(self, owner: str, file_id: str) -> None:
        """Delete one spooled file (sent, or removed from the form)."""
        with self._lock:
            found = self._files.get(owner, {}).pop(file_id, None)
        if found is not None:
            found.path.unlink(missing_ok=True)
