"""Extending the key log when a checkpoint is signed (ADR 0019).

The key log (:mod:`ledger.format.keylog`) is derived from the ledger at
checkpoint time, never in the append path: :func:`prepare_keyed_checkpoint`
reads the entries between the last size the key log processed and the new
checkpoint's size, extends the key tree from its stored frontier, and signs
the checkpoint with the key log's size and root as an extension line. The
caller stores the checkpoint and the key-log rows in one transaction, under
the checkpoint's compare-and-swap and a compare-and-swap of its own on the
key log's head (:class:`KeyLogBase`), so a process that lost the race
stores neither.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ledger.errors import ConflictError, CorruptLedgerError
from ledger.format.keylog import KeyLeaf, KeyLogFrontier, KeyLogHead, extension_line, key_leaves
from ledger.format.merkle import Node, frontier
from ledger.format.note import NoteSigner
from ledger.store.presign import prepare_checkpoint
from ledger.store.storage import LedgerReader, LedgerStorage, StoredCheckpoint


@dataclass(frozen=True)
class KeyLogBase:
    """The stored key log: ledger entries processed, its leaf count and frontier hashes."""

    ledger_size: int
    size: int
    frontier: Sequence[bytes]


@dataclass(frozen=True)
class KeyedCheckpoint:
    """A signed checkpoint and the key-log rows it adds (to store in one transaction)."""

    checkpoint: StoredCheckpoint
    base: KeyLogBase
    leaves: list[KeyLeaf]
    """New leaves; the first has key index ``base.size``."""
    nodes: list[tuple[Node, bytes]]
    """The perfect key-tree nodes the new leaves complete."""
    head: KeyLogHead


def prepare_keyed_checkpoint(reader: LedgerReader, size: int, signer: NoteSigner,
                             origin: str, base: KeyLogBase) -> KeyedCheckpoint | None:
    """A checkpoint of ``size`` leaves carrying the key log extended to it, if it is new.

    ``size`` and ``base`` are read in the same transaction as ``reader``.
    """
    latest = reader.latest_checkpoint()
    if size == 0 or (latest is not None and latest.size >= size):
        return None
    if base.ledger_size > size:
        raise CorruptLedgerError(f"the key log covers {base.ledger_size} entries, more than "
                                 f"the ledger's {size}")
    entries = reader.entries(base.ledger_size, size)
    try:
        leaves = key_leaves(base.ledger_size, entries)
    finally:
        close = getattr(entries, "close", None)
        if close is not None:
            close()
    tree = KeyLogFrontier(base.size, base.frontier)
    nodes = tree.extend(leaf.hash() for leaf in leaves)
    head = KeyLogHead(tree.size, tree.root())
    checkpoint = prepare_checkpoint(reader, size, signer, origin,
                                    extensions=(extension_line(head.size, head.root),))
    if checkpoint is None:
        return None
    return KeyedCheckpoint(checkpoint, base, leaves, nodes, head)


class MemoryKeyLog:
    """The key log in memory, beside a :class:`~ledger.MemoryStorage` (tests, tools, benches)."""

    def __init__(self) -> None:
        """An empty key log, no entry processed."""
        self.ledger_size = 0
        self.leaves: list[KeyLeaf] = []
        self._nodes: dict[Node, bytes] = {}
        self.heads: dict[int, KeyLogHead] = {}
        """The key log each stored checkpoint carries, by the checkpoint's size."""

    def base(self) -> KeyLogBase:
        """The stored key log, as :func:`prepare_keyed_checkpoint` extends it."""
        size = len(self.leaves)
        return KeyLogBase(self.ledger_size, size, [self._nodes[k] for k in frontier(size)])

    def store(self, prepared: KeyedCheckpoint) -> None:
        """Keep the rows of ``prepared``; ``ConflictError`` if the base moved."""
        if (prepared.base.ledger_size, prepared.base.size) != (self.ledger_size,
                                                               len(self.leaves)):
            raise ConflictError("the key log moved since this checkpoint was prepared")
        self.leaves += prepared.leaves
        self._nodes.update(prepared.nodes)
        self.ledger_size = prepared.checkpoint.size
        self.heads[prepared.checkpoint.size] = prepared.head

    def nodes(self, keys: Sequence[Node]) -> Mapping[Node, bytes]:
        """The stored key-tree nodes among ``keys`` (a ``NodeReader``)."""
        return {k: self._nodes[k] for k in keys if k in self._nodes}

    def checkpoint(self, storage: LedgerStorage, signer: NoteSigner,
                   origin: str) -> StoredCheckpoint | None:
        """Sign and store a checkpoint of ``storage`` carrying this key log, as the service does."""
        prepared = prepare_keyed_checkpoint(storage, storage.size(), signer, origin, self.base())
        if prepared is None:
            return None
        storage.add_checkpoint(prepared.checkpoint)
        self.store(prepared)
        return prepared.checkpoint
