"""Writing large files: in a background thread, with the disk kept busy as we go.

Copying plaintext into the page cache costs about as much CPU as decrypting
and hashing it; done inline it adds to every chunk's time. :class:`BackgroundWriter`
takes a copy of each chunk (the decryptor reuses its buffer) and a thread
writes it while the caller decrypts the next. At most ``depth`` chunks wait,
so memory stays bounded. A write error is raised by the next :meth:`write`
or by :meth:`close`, never lost.

:class:`WritebackPacer` asks the kernel to start writing dirty pages to disk
every few MiB (Linux ``sync_file_range(SYNC_FILE_RANGE_WRITE)``, which does not
wait), so the disk works while the file is written and the final ``fsync``,
which durability needs and still does, finds almost nothing left to flush
(it took ~0.4 s per GiB here). Elsewhere it does nothing.

:func:`decrypt_to_path` puts them to work for ``crypto``'s streaming
decryption, which itself does no I/O: a content stream decrypted into a file
atomically, written by a :class:`BackgroundWriter` and hashed by
:class:`~streamio.hashing.ThreadedSha256`, beside the cipher.
"""

from __future__ import annotations

import ctypes
import os
import queue
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, cast

from crypto import OpenedEnvelope, StreamDigest, decrypt_content
from streamio.hashing import ThreadedSha256

WRITEBACK_STEP = 8 << 20
"""Dirty bytes after which :class:`WritebackPacer` starts their write-back."""
_SYNC_FILE_RANGE_WRITE = 2  # <linux/fs.h>


def _sync_file_range() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (AttributeError, OSError, TypeError):  # not Linux: no such call (or no libc)
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_START_WRITEBACK = _sync_file_range()


class WritebackPacer:
    """Starts the write-back of each :data:`WRITEBACK_STEP` bytes written to ``fd``."""

    def __init__(self, fd: int, step: int = WRITEBACK_STEP) -> None:
        """Pace the file open as ``fd``, which is written from offset 0 onwards."""
        self._fd, self._step = fd, step
        self._written = self._started = 0

    def wrote(self, count: int) -> None:
        """Note that ``count`` more bytes were written; start write-back if due."""
        self._written += count
        if self._written - self._started >= self._step and _START_WRITEBACK is not None:
            # A hint only: a failure here changes nothing, fsync still decides.
            _START_WRITEBACK(self._fd, self._started, self._written - self._started,
                             _SYNC_FILE_RANGE_WRITE)
            self._started = self._written


class BackgroundWriter:
    """Writes to file descriptor ``fd`` from a thread; :meth:`close` waits for every byte."""

    def __init__(self, fd: int, depth: int = 2) -> None:
        """Write to ``fd`` (not closed here); hold at most ``depth`` chunks in waiting."""
        self._fd = fd
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=depth)  # None: stop
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="cadena-writer", daemon=True)
        self._thread.start()
        self._closed = False

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Queue a copy of ``data`` for writing; raise an earlier write's error."""
        self._raise_error()
        if self._closed:
            raise ValueError("write to a closed BackgroundWriter")
        if data:
            self._queue.put(bytes(data))
        return len(data)

    def close(self) -> None:
        """Wait until everything queued is written; raise the first write error."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join()
        self._raise_error()

    def __enter__(self) -> BackgroundWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if kind is None:
            self.close()
            return
        self._abandon()

    def _abandon(self) -> None:
        # Failing already: drop what waits, stop the thread, keep the first error.
        self._closed = True
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        pacer = WritebackPacer(self._fd)
        while (data := self._queue.get()) is not None:
            if self._error is not None:
                continue
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(self._fd, view):]
                pacer.wrote(len(data))
            except BaseException as exc:  # noqa: BLE001 - reported to the caller's thread
                self._error = exc

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error


def decrypt_to_path(opened: OpenedEnvelope, index: int, reader: BinaryIO,
                    path: str | os.PathLike[str], *, fsync: bool = True) -> StreamDigest:
    """Decrypt stream ``index`` into ``path`` atomically: nothing appears there on failure.

    Writes to a temporary file in the same directory, fsyncs it (unless
    ``fsync=False``), then renames it over ``path``. Raises what
    :func:`crypto.opening.decrypt_content` raises, after removing the
    temporary file.
    """
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=".cadena-", suffix=".part", dir=target.parent)
    try:
        try:
            # Written from a thread while the next chunk decrypts.
            with BackgroundWriter(fd) as out:
                digest = decrypt_content(opened, index, reader, cast(BinaryIO, out),
                                         hasher=ThreadedSha256)
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return digest
