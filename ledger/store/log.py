"""The append-only ledger over a :class:`~ledger.store.storage.LedgerStorage`.

:class:`Ledger` appends entries (hash-chained by ``prev`` and added to the
RFC 9162 tree), signs checkpoints and serves proofs. It never commits: every
call runs inside the caller's transaction, so an entry is stored exactly when
the action it records is.

Rules it keeps (DESIGN "Ledger"):

- *Cadence*: :meth:`Ledger.checkpoint` signs a new checkpoint only when the
  tree grew past the latest one; the caller decides how often to call it.
  Before signing, the new root is checked to extend the latest signed one
  (RFC 9162 §2.1.4), so the log never signs two inconsistent checkpoints; the
  storage's compare-and-swap stops two processes signing at the same size.
- *Trust*: proofs are served only for tree sizes that have a signed
  checkpoint, because an inclusion proof alone does not fix the tree size.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from ledger.errors import (
    ConsistencyProofError,
    CorruptLedgerError,
    InclusionProofError,
    ProofError,
    StorageError,
)
from ledger.format import merkle
from ledger.format.entry import GENESIS_PREV, EntryDraft, encode_entry
from ledger.format.note import NoteSigner
from ledger.store.presign import prepare_checkpoint
from ledger.store.storage import LedgerStorage, StoredCheckpoint
from ledger.store.treecache import TreeCache


@dataclass(frozen=True)
class AppendedEntry:
    """Where an entry landed: its index, RFC 9162 leaf hash and exact bytes."""

    index: int
    leaf_hash: bytes
    raw: bytes


class Ledger:
    """Appends, checkpoints and proves, through an injected storage and clock."""

    def __init__(self, storage: LedgerStorage,
                 clock: Callable[[], datetime] | None = None) -> None:
        """Use ``storage`` (inside the caller's transaction) and ``clock`` for :meth:`now`."""
        self.storage = storage
        self._clock = clock or (lambda: datetime.now(UTC))

    def now(self) -> datetime:
        """The current time from the injected clock, for stamping drafts."""
        return self._clock()

    def append(self, draft: EntryDraft) -> AppendedEntry:
        """Append one entry; the caller's transaction makes it durable."""
        return self.append_many([draft])[0]

    def append_many(self, drafts: Iterable[EntryDraft]) -> list[AppendedEntry]:
        """Append entries in order, under one lock and one storage write."""
        drafts = list(drafts)
        if not drafts:
            return []
        head = self.storage.lock_head()
        if head.size == 0:
            prev = GENESIS_PREV
        elif head.last_leaf_hash is None:
            raise StorageError("ledger head has entries but no last leaf hash")
        elif head.last_leaf_hash != head.entry_leaf_hash:
            # Linking to a wrong head would make the next entry look broken and
            # get a checkpoint signed over it: refuse, so verify names the head.
            raise CorruptLedgerError(
                f"the ledger head's last leaf hash is not entry {head.size - 1}'s")
        else:
            prev = head.last_leaf_hash
        builder = merkle.TreeBuilder(head.size, self.storage.nodes(merkle.frontier(head.size)))
        raws: list[bytes] = []
        leaves: list[bytes] = []
        sha256 = hashlib.sha256
        for index, draft in enumerate(drafts, head.size):
            raw = encode_entry(draft, index, prev)
            prev = sha256(b"\x00" + raw).digest()  # RFC 9162 leaf hash; the next entry's prev
            raws.append(raw)
            leaves.append(prev)
        self.storage.append(head.size, raws, builder.extend(leaves))
        return [AppendedEntry(index, leaf, raw)
                for index, leaf, raw in zip(itertools.count(head.size), leaves, raws)]

    def checkpoint(self, signer: NoteSigner, origin: str) -> StoredCheckpoint | None:
        """Sign and store a checkpoint of the whole tree if it grew; else return ``None``.

        Raises :class:`~ledger.errors.ConflictError` if another writer stored a
        checkpoint of that size first.
        """
        stored = prepare_checkpoint(self.storage, self.storage.lock_head().size, signer, origin)
        if stored is not None:
            self.storage.add_checkpoint(stored)
        return stored

    def signed_checkpoint(self, size: int) -> StoredCheckpoint | None:
        """The stored checkpoint of exactly ``size`` leaves, if one was signed."""
        return self.storage.checkpoint_at(size)

    def _require_checkpoint(self, size: int, error: type[ProofError]) -> None:
        if self.signed_checkpoint(size) is None:
            raise error(f"no signed checkpoint has tree size {size} (trust rule)")

    def _signed_tree(self, size: int, error: type[ProofError]) -> TreeCache | None:
        """Check the trust rule for ``size``; the storage's committed-tree cache, if it covers it.

        A cache that covers ``size`` knows its committed checkpoint already,
        so a proof from it needs no storage read at all.
        """
        tree = self.storage.committed_tree(size)
        if tree is None:
            self._require_checkpoint(size, error)
            tree = self.storage.committed_tree(size)
        return tree

    def root(self, size: int) -> bytes:
        """The RFC 9162 root of the first ``size`` entries."""
        if not 0 <= size <= self.storage.size():
            raise ProofError(f"size {size} is not in [0, {self.storage.size()}]")
        return merkle.root(self.storage, size)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """RFC 9162 §2.1.3.1 inclusion proof of entry ``index`` in the signed tree of ``size``."""
        if not 0 <= index < size:
            raise InclusionProofError(f"index {index} is not in a tree of size {size}")
        tree = self._signed_tree(size, InclusionProofError)
        if tree is not None:
            return tree.inclusion_proof(index, size, self.storage.nodes)
        return merkle.inclusion_proof(self.storage, index, size)

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """RFC 9162 §2.1.4.1 consistency proof between two signed tree sizes."""
        if not 0 < old_size <= new_size:
            raise ConsistencyProofError(
                f"no consistency proof from {old_size} to {new_size} (from 0 is meaningless)")
        self._signed_tree(old_size, ConsistencyProofError)
        tree = self._signed_tree(new_size, ConsistencyProofError)
        if old_size == new_size:
            return []
        if tree is not None:
            return tree.consistency_proof(old_size, new_size, self.storage.nodes)
        return merkle.consistency_proof(self.storage, old_size, new_size)
