"""A file writer that writes in a background thread, so decryption and disk overlap.

Copying plaintext into the page cache costs about as much CPU as decrypting
and hashing it; done inline it adds to every chunk's time. :class:`BackgroundWriter`
takes a copy of each chunk (the decryptor reuses its buffer) and a thread
writes it while the caller decrypts the next. At most ``depth`` chunks wait,
so memory stays bounded. A write error is raised by the next :meth:`write`
or by :meth:`close`, never lost.
"""

from __future__ import annotations

import os
import queue
import threading
from types import TracebackType


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
        while (data := self._queue.get()) is not None:
            if self._error is not None:
                continue
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(self._fd, view):]
            except BaseException as exc:  # noqa: BLE001 - reported to the caller's thread
                self._error = exc

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error
