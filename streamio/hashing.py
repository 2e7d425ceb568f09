"""SHA-256 computed in a worker thread, so that hashing runs beside encryption.

:class:`ThreadedSha256` is a :class:`crypto.hashing.StreamHasher`: the client
hands it to ``crypto``'s streaming functions, which stay free of threads.

Encrypting a stream hashes both its plaintext and its ciphertext: two SHA-256
passes that cost more CPU than the ChaCha20-Poly1305 itself. ``hashlib``
releases the GIL on large buffers, so a thread per digest lets them run on
another core while the caller encrypts the next chunk. Small inputs (a
message, a manifest, the 64-byte chunks of test vectors) are hashed inline:
a thread is only started once a buffer of :data:`THREAD_THRESHOLD` bytes or
more arrives. Buffers handed over must not change afterwards (``bytes``, or a
``bytearray`` the caller no longer writes to).
"""

from __future__ import annotations

import hashlib
import queue
import threading
from types import TracebackType

THREAD_THRESHOLD = 64 * 1024
"""Smallest update that moves hashing to a worker thread."""


class ThreadedSha256:
    """A SHA-256 whose updates may run in a worker thread; use it as a context manager.

    The result (:meth:`hexdigest`) is the same as ``hashlib.sha256`` over
    the same updates in the same order. Leaving the ``with`` block stops the
    thread, whatever happened.
    """

    def __init__(self, depth: int = 4) -> None:
        """At most ``depth`` buffers wait for the thread (bounded memory)."""
        self._hash = hashlib.sha256()
        self._depth = depth
        self._queue: queue.Queue[bytes | bytearray | None] | None = None
        self._thread: threading.Thread | None = None
        self._finished = False

    def update(self, data: bytes | bytearray) -> None:
        """Add ``data`` (not to be modified afterwards) to the digest."""
        if self._finished:
            raise ValueError("update after the digest was finished")
        if self._queue is None:
            if len(data) < THREAD_THRESHOLD:
                self._hash.update(data)
                return
            self._queue = queue.Queue(maxsize=self._depth)
            self._thread = threading.Thread(target=self._run, name="cadena-sha256",
                                            daemon=True)
            self._thread.start()
        self._queue.put(data)

    def hexdigest(self) -> str:
        """The lowercase hex digest of everything added (waits for the thread)."""
        self._stop()
        return self._hash.hexdigest()

    def __enter__(self) -> ThreadedSha256:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop()

    def _stop(self) -> None:
        self._finished = True
        if self._queue is not None and self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        assert self._queue is not None  # noqa: S101 - set before the thread starts
        while (data := self._queue.get()) is not None:
            self._hash.update(data)
