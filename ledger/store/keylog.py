"""Extending the key log when a checkpoint is signed (docs/adr: the key-entry log).

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

from collections.abc import Sequence
from dataclasses import dataclass

from ledger.errors import CorruptLedgerError
from ledger.format.keylog import KeyLeaf, KeyLogFrontier, KeyLogHead, extension_line, key_leaves
from ledger.format.merkle import Node
from ledger.format.note import NoteSigner
from ledger.store.presign import prepare_checkpoint
from ledger.store.storage import LedgerReader, StoredCheckpoint


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
