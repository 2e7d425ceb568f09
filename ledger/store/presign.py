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

import hashlib
from binascii import hexlify
from collections.abc import Iterator
from itertools import islice

from ledger.errors import CorruptLedgerError, EntryFormatError
from ledger.format import merkle
from ledger.format.checker import EntryChecker
from ledger.format.entry import GENESIS_PREV
from ledger.format.note import Checkpoint, NoteSigner, sign_checkpoint
from ledger.format.proof import verify_consistency
from ledger.store.storage import LedgerReader, StoredCheckpoint

_BATCH = 10_000


def prepare_checkpoint(reader: LedgerReader, size: int, signer: NoteSigner,
                       origin: str, *, extensions: tuple[str, ...] = ()
                       ) -> StoredCheckpoint | None:
    """A signed checkpoint of the committed tree of ``size`` leaves, if it is new.

    ``size`` must be a committed head size (read in the same transaction as
    ``reader`` reads). ``None`` when the tree is empty or the latest stored
    checkpoint already covers ``size``; the new root is checked consistent
    with the latest one before it is signed (RFC 9162 §2.1.4). ``extensions``:
    C2SP tlog-checkpoint extension lines to sign with it (the key log's,
    :mod:`ledger.store.keylog`).
    """
    latest = reader.latest_checkpoint()
    if size == 0 or (latest is not None and latest.size >= size):
        return None
    check_chain(reader, latest.size if latest is not None else 0, size)
    root = merkle.root(reader, size)
    if latest is not None:
        proof = merkle.consistency_proof(reader, latest.size, size)
        verify_consistency(latest.size, size, latest.root, root, proof=proof)
    note = sign_checkpoint(Checkpoint(origin, size, root, extensions), signer)
    return StoredCheckpoint(size=size, root=root, note=note)


def check_chain(reader: LedgerReader, start: int, stop: int) -> None:
    """Raise :class:`CorruptLedgerError` unless entries ``start..stop-1`` chain by ``prev``.

    Each entry's ``prev`` must be the leaf hash of the entry before it (the
    one at ``start - 1`` included): a signature over a broken chain would
    make the log vouch for it, and the verifier would then blame an intact
    entry. Only the entries a new checkpoint adds are read.
    """
    first = max(start - 1, 0)
    entries = reader.entries(first, stop)
    try:
        _check_batches(entries, first=first, stop=stop,
                       prev=hexlify(GENESIS_PREV) if start == 0 else None)
    finally:
        # A reader's generator holds a cursor: end it here, not when the
        # collector finds it after its connection has gone.
        close = getattr(entries, "close", None)
        if close is not None:
            close()


def _check_batches(entries: Iterator[bytes], *, first: int, stop: int,
                   prev: bytes | None) -> None:
    checker, sha = EntryChecker(), hashlib.sha256
    for batch_start in range(first, stop, _BATCH):
        # islice, not zip(entries, range(n)): zip pulls one more entry from the
        # shared iterator before it sees the range end, losing it for the next batch.
        raws = list(islice(entries, min(_BATCH, stop - batch_start)))
        try:
            prevs = [found for _, _, found in checker.scan(raws)]
        except EntryFormatError as exc:
            raise CorruptLedgerError(f"an entry from {batch_start} on is malformed: {exc}") \
                from exc
        for offset, (raw, linked) in enumerate(zip(raws, prevs, strict=True)):
            if prev is not None and linked != prev:
                raise CorruptLedgerError(
                    f"entry {batch_start + offset} does not link to the entry before it")
            prev = hexlify(sha(b"\x00" + raw).digest())
        if len(raws) < min(_BATCH, stop - batch_start):
            raise CorruptLedgerError(f"entries from {batch_start + len(raws)} on are missing")
