"""The incremental SHA-256 that streaming encryption feeds, as an injectable part.

:func:`crypto.stream.encrypt_stream` and :func:`crypto.stream.decrypt_stream`
hash plaintext and ciphertext as they go. They take a :data:`HasherFactory`
so that a caller may hash beside the cipher (the client passes
``streamio.ThreadedSha256``, which hashes in worker threads) while this core
stays pure: its default, :class:`Sha256`, is ``hashlib`` in the caller's
thread. Every implementation gives the digest ``hashlib.sha256`` gives over
the same updates in the same order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from types import TracebackType
from typing import Protocol


class StreamHasher(Protocol):
    """An incremental SHA-256, used as a context manager for the length of one stream.

    Leaving the ``with`` block releases whatever the implementation holds
    (a thread, say), whatever happened. Buffers handed to :meth:`update` are
    not modified afterwards by the streaming code.
    """

    def update(self, data: bytes | bytearray) -> None:
        """Add ``data`` to the digest."""
        ...

    def hexdigest(self) -> str:
        """The lowercase hex digest of everything added."""
        ...

    def __enter__(self) -> StreamHasher:
        """Start hashing one stream."""
        ...

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        """Stop, releasing any resource."""
        ...


HasherFactory = Callable[[], StreamHasher]
"""Makes one :class:`StreamHasher` per digest that a stream needs."""


class Sha256:
    """``hashlib.sha256`` as a :class:`StreamHasher`: every update in the caller's thread."""

    def __init__(self) -> None:
        """A fresh SHA-256."""
        self._hash = hashlib.sha256()

    def update(self, data: bytes | bytearray) -> None:
        """Add ``data`` to the digest."""
        self._hash.update(data)

    def hexdigest(self) -> str:
        """The lowercase hex digest of everything added."""
        return self._hash.hexdigest()

    def __enter__(self) -> Sha256:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        return None
