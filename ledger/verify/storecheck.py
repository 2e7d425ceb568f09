"""What the entries alone do not prove: the head, the stored leaf hashes, the checkpoint numbers.

The passes of :mod:`ledger.verify.verifier` recompute everything from the entries;
three things the storage keeps beside them are checked here, once those
passes found the entries, nodes and checkpoints clean:

``bad_leaf_hash``       the leaf hash stored with entry ``p`` is not
                        ``SHA-256(0x00 || entry p)``; at ``p``.
``bad_head``            the head's size is below the number of entries, its
                        last leaf hash is not the last entry's leaf hash, or
                        its latest checkpoint number is below a stored one; at
                        the last entry (``size - 1``). A head size *above*
                        the entries is ``missing_entry`` (the walk's rule).
``missing_checkpoint``  the stored checkpoints, in size order, are not
                        numbered 1, 2, ... up to the head's latest: a row is
                        gone. At the size of the last checkpoint before the
                        gap (0 if none): the first entry that only the missing
                        checkpoint signed.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable

from ledger.store.storage import Head, LedgerReader, StoredCheckpoint
from ledger.verify.report import Fault, Finding

__all__ = ["check_head", "check_leaf_hashes", "check_storage"]

_BATCH = 10_000


def check_storage(reader: LedgerReader, size: int) -> Finding | None:
    """The first fault among the stored leaf hashes, the checkpoint numbers and the head."""
    return check_leaf_hashes(reader, size) or check_head(reader, size, reader.checkpoints())


def check_leaf_hashes(reader: LedgerReader, size: int) -> Finding | None:
    """The first entry whose stored leaf hash is not its RFC 9162 leaf hash, if any."""
    sha = hashlib.sha256
    rows = reader.stored_leaf_hashes(0, size)
    for start in range(0, size, _BATCH):
        batch = list(itertools.islice(rows, _BATCH))
        stored = [leaf for _, leaf in batch]
        leaves = [sha(b"\x00" + raw).digest() for raw, _ in batch]
        if stored != leaves:
            at = next(i for i, (a, b) in enumerate(zip(stored, leaves, strict=True)) if a != b)
            return Finding(start + at, Fault.BAD_LEAF_HASH,
                           f"the leaf hash stored with entry {start + at} is not its leaf hash")
    return None


def check_head(reader: LedgerReader, size: int,
               checkpoints: Iterable[StoredCheckpoint]) -> Finding | None:
    """A gap in the checkpoint numbers, or a head that disagrees with ``size`` entries."""
    head = reader.head()
    last = max(size - 1, 0)
    last_seq, signed = 0, 0
    for stored in checkpoints:
        if stored.seq is None:  # built by hand (tests, offline tools): nothing to compare
            continue
        if stored.seq != last_seq + 1:
            return _gap(signed, f"checkpoint at size {stored.size} is number {stored.seq}, "
                                f"number {last_seq + 1} was due")
        last_seq, signed = stored.seq, stored.size
    if head.checkpoint_seq > last_seq:
        return _gap(signed, f"the head's latest checkpoint is number {head.checkpoint_seq}, "
                            f"the last stored is {last_seq}")
    fault = _head_fault(reader, head, size, last_seq)
    return None if fault is None else Finding(last, Fault.BAD_HEAD, fault)


def _gap(signed: int, detail: str) -> Finding:
    return Finding(signed, Fault.MISSING_CHECKPOINT, detail)


def _head_fault(reader: LedgerReader, head: Head, size: int, last_seq: int) -> str | None:
    if head.checkpoint_seq < last_seq:
        return f"the head's latest checkpoint is number {head.checkpoint_seq}, " \
               f"number {last_seq} is stored"
    if head.size != size:
        return f"the head says {head.size} entries, {size} are stored"
    last = next(iter(reader.entries(size - 1, size)), None) if size else None
    want = None if last is None else hashlib.sha256(b"\x00" + last).digest()
    if head.last_leaf_hash != want:
        return f"the head's last leaf hash is not entry {size - 1}'s leaf hash"
    return None
