"""Preparing a checkpoint without the append lock; storing it is the compare-and-swap.

``Ledger.checkpoint`` signs under the ledger head's lock, which every
appender waits for (on PostgreSQL, in every process) while the root, the
consistency proof and the signature are computed. They need no lock: the
entries and nodes of a committed tree never change, so the tree of a
committed head size has one root, consistent with every smaller committed
tree. :func:`prepare_checkpoint` signs that tree from a plain read;
``LedgerStorage.add_checkpoint`` then takes the lock only to store it if it
is still larger than the latest (``ConflictError`` otherwise: a checkpoint
signed but not stored is never served). So the log still never stores two
inconsistent checkpoints, and its sizes only grow (DESIGN.md, checkpoint
cadence).
"""

from __future__ import annotations

from ledger import merkle
from ledger.note import Checkpoint, NoteSigner, sign_checkpoint
from ledger.proof import verify_consistency
from ledger.storage import LedgerReader, StoredCheckpoint


def prepare_checkpoint(reader: LedgerReader, size: int, signer: NoteSigner,
                       origin: str) -> StoredCheckpoint | None:
    """A signed checkpoint of the committed tree of ``size`` leaves, if it is new.

    ``size`` must be a committed head size (read in the same transaction as
    ``reader`` reads). ``None`` when the tree is empty or the latest stored
    checkpoint already covers ``size``; the new root is checked consistent
    with the latest one before it is signed (RFC 9162 §2.1.4).
    """
    latest = reader.latest_checkpoint()
    if size == 0 or (latest is not None and latest.size >= size):
        return None
    root = merkle.root(reader, size)
    if latest is not None:
        proof = merkle.consistency_proof(reader, latest.size, size)
        verify_consistency(latest.size, size, latest.root, root, proof)
    note = sign_checkpoint(Checkpoint(origin, size, root), signer)
    return StoredCheckpoint(size=size, root=root, note=note)
