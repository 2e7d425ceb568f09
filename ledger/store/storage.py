"""The ledger's storage protocol.

The ledger core never does I/O itself: it talks to a ``LedgerStorage``. Two
implementations exist and one test suite runs against both:
``ledger.store.memory.MemoryStorage`` (in-memory, for tests and offline tools) and
``ledger.sql.store.SqlStorage`` (SQLAlchemy, joins the caller's transaction).

What is stored:

- entries: the exact canonical bytes of each entry, by index (never
  re-serialized);
- nodes: the hash of every *perfect* subtree ``(level, index)`` (see
  ``ledger.format.merkle``), level 0 being the leaf hashes; this makes roots and
  proofs O(log n) reads;
- checkpoints: every signed checkpoint note, by tree size (looked up by size,
  or listed in ascending order), each with its sequence number (1, 2, ...
  in the order they were stored);
- the head: the size, the last leaf hash (what the next entry links to) and
  the latest checkpoint's sequence number, so that the verifier can tell a
  deleted checkpoint row (the latest included) from one never signed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ledger.format.merkle import Node, NodeReader

if TYPE_CHECKING:
    from ledger.store.treecache import TreeCache


@dataclass(frozen=True)
class Head:
    """The ledger's head: its size, last leaf hash and latest checkpoint sequence number.

    ``entry_leaf_hash`` is the leaf hash stored with entry ``size - 1``, read
    in the same statement: an append refuses to link to a head that
    disagrees with it (``None`` when there is no such entry).
    """

    size: int
    last_leaf_hash: bytes | None
    entry_leaf_hash: bytes | None = None
    checkpoint_seq: int = 0


@dataclass(frozen=True)
class StoredCheckpoint:
    """A signed checkpoint as stored: size, root and the full signed-note text."""

    size: int
    root: bytes
    note: str
    seq: int | None = field(default=None, compare=False)
    """The storage's sequence number (1, 2, ...); ``None`` until stored (not part of equality)."""


class LedgerReader(NodeReader, Protocol):
    """Read access to a stored ledger (what the verifier and the proof endpoints need)."""

    def size(self) -> int:
        """Number of entries stored (no lock taken)."""
        ...

    def entries(self, start: int, stop: int) -> Iterator[bytes]:
        """Entry bytes for indices ``start <= i < stop``, in index order, streamed."""
        ...

    def iter_nodes(self) -> Iterator[tuple[Node, bytes]]:
        """Every stored node, ordered by the last leaf it covers, then by level."""
        ...

    def head(self) -> Head:
        """The head as stored, read without its lock."""
        ...

    def stored_leaf_hashes(self, start: int, stop: int) -> Iterator[tuple[bytes, bytes]]:
        """``(entry bytes, the leaf hash stored beside them)`` for ``start <= i < stop``."""
        ...

    def iter_node_hashes(self) -> Iterator[bytes]:
        """The hash of every stored node, in :meth:`iter_nodes` order, without keys.

        What the verifier streams (a million entries mean two million nodes):
        it recomputes each node in the same order, so equal hashes need no key.
        """
        ...

    def node_hashes_ending_between(self, first: int, last: int) -> Iterator[bytes]:
        """The hash of every stored node whose last leaf is in ``first..last`` (inclusive).

        In :meth:`iter_nodes` order, without keys (a primary-key range scan):
        one worker of a parallel verification reads its chunk's nodes so.
        """
        ...

    def checkpoints(self) -> Iterator[StoredCheckpoint]:
        """Every stored checkpoint, by ascending size."""
        ...

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        """The stored checkpoint with the largest size, if any."""
        ...

    def checkpoint_at(self, size: int) -> StoredCheckpoint | None:
        """The stored checkpoint of exactly ``size`` leaves, if any (a point lookup).

        Proof requests check the trust rule with it, and a log signing every
        second stores 86,400 checkpoints a day: never a scan.
        """
        ...


class LedgerStorage(LedgerReader, Protocol):
    """Read and append access, inside the caller's transaction."""

    def lock_head(self) -> Head:
        """Take the append lock for the current transaction and return the head.

        Held until the caller's transaction ends, so appends from several
        processes are serialized without gaps or forks.
        """
        ...

    def append(
        self, first_index: int, entries: Sequence[bytes], nodes: Sequence[tuple[Node, bytes]]
    ) -> None:
        """Store ``entries`` from ``first_index`` on, and the perfect nodes they complete."""
        ...

    def add_checkpoint(self, checkpoint: StoredCheckpoint) -> None:
        """Store a checkpoint larger than the latest one; raise ``ConflictError`` otherwise."""
        ...

    def update_checkpoint_note(self, size: int, note: str) -> None:
        """Replace the note of the checkpoint at ``size`` (to add witness cosignatures)."""
        ...

    def committed_tree(self, size: int) -> TreeCache | None:
        """An in-memory copy of the committed tree covering ``size`` leaves, if kept.

        ``None`` means: read nodes through :meth:`nodes`. Only for a size
        whose signed checkpoint was already found committed.
        """
        ...
