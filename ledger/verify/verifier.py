"""The auditor's verifier: a whole stored ledger, every entry, node and checkpoint.

:func:`verify_ledger` checks, for every position ``p``, that the entry is
canonical, says ``index == p``, links by ``prev`` to the leaf hash of entry
``p - 1``; that every stored node equals the one recomputed from the entries
(RFC 9162 §2.1.1) and no other node is stored; and at each stored
checkpoint's size, the log's signature (C2SP signed-note) and that the signed
root equals the recomputed root. Two checkpoints that both equal roots
recomputed from one leaf sequence are consistent (RFC 9162 §2.1.4), so no
proof is needed between them.

It runs two passes, the second only if the first does not find the ledger clean:

1. The chunked pass (:mod:`ledger.verify.parallel`): aligned chunks of ``2**10``
   leaves checked with C-level maps, in this process or, given a reader
   opener and ``workers > 1``, in that many worker processes (from
   :data:`PARALLEL_FROM` entries on: below that, starting processes costs
   more than it saves). It only ever answers "clean".
2. The exact pass (:mod:`ledger.verify.walk`): one streaming walk in storage order,
   keeping the tree's right frontier (O(log n)) and a batch of entries. It
   stops at the first fault and only then reads a little more (the next
   entry, a few nodes by key) to say what went wrong:

``MALFORMED_ENTRY``  entry ``p`` is not a canonical entry.
``INSERTED``         entry ``p`` has no leaf in the tree; or it repeats an
                     earlier entry that the tree holds at its own index; or
                     the entry after it is the one the tree holds at ``p``.
``MISSING_ENTRY``    entry ``p`` is the tree's entry ``k > p`` and the next
                     entry is ``k + 1`` (or there is none): ``p..k-1`` are gone.
                     Also: the tree or the storage's size goes on after the
                     last entry (no checkpoint beyond it).
``REORDERED``        entry ``p`` is the tree's entry ``k > p`` but the next
                     entry is not ``k + 1``.
``MODIFIED_ENTRY``   entry ``p`` differs from the tree's leaf ``p`` and none
                     of the above holds and nothing attests its bytes; or
                     entry ``p`` and ``p - 1`` both match their leaves but do
                     not link (``first_bad_index = p - 1``).
``BAD_NODE``         a stored node differs from the recomputed one (or is
                     missing) while the entries are attested: for a leaf, by
                     the next entry's ``prev``, by the stored parent node, or
                     by a validly signed checkpoint of size ``p + 1``.
                     ``first_bad_index`` is the first leaf the node covers.
``BAD_CHECKPOINT_SIGNATURE``  a checkpoint note does not parse or carries no
                     valid signature by the ledger key.
``CHECKPOINT_ROOT_MISMATCH``  a validly signed checkpoint's root differs from
                     the recomputed root (or from its stored root column).
``FORK``             as above, but the next stored checkpoint is validly
                     signed and matches the stored tree: the key signed two
                     views that cannot both hold. Checkpoint faults report
                     ``first_bad_index = size - 1``.
``TRUNCATED``        a validly signed checkpoint is larger than the number
                     of entries; ``first_bad_index`` is the first missing index.

Once both the entries and the tree are clean, :mod:`ledger.verify.storecheck` checks
what the storage keeps beside them: ``BAD_LEAF_HASH`` (a stored leaf hash
column), ``BAD_HEAD`` (the head's size, last leaf hash or latest checkpoint
number) and ``MISSING_CHECKPOINT`` (a gap in the checkpoint numbers).
Then :mod:`ledger.verify.keylog` recomputes the key log from the entries:
``KEY_LOG_MISMATCH`` (a checkpoint's key root is not what the entries give).
"""


from __future__ import annotations

from ledger.errors import VerificationError
from ledger.format.note import NoteVerifier
from ledger.store.storage import LedgerReader
from ledger.verify.chunk import ReaderOpener
from ledger.verify.keylog import key_log_finding
from ledger.verify.parallel import CHUNK_BITS, chunked_report
from ledger.verify.report import Fault, LedgerReport
from ledger.verify.walk import walk_ledger

__all__ = ["PARALLEL_FROM", "Fault", "LedgerReport", "ReaderOpener", "check_ledger",
           "verify_ledger"]

PARALLEL_FROM = 1 << 16
"""Ledgers smaller than this are checked in this process whatever ``workers`` says.

Forking the workers and opening their readers costs some 30 ms; the chunked
pass takes ~4 µs an entry: at 2**16 entries two workers save ~0.1 s net.
"""


def verify_ledger(reader: LedgerReader, verifier: NoteVerifier, *,
                  opener: ReaderOpener | None = None, workers: int = 1,
                  chunk_bits: int = CHUNK_BITS, parallel_from: int | None = None) -> LedgerReport:
    """Verify a whole stored ledger; report the first fault, if any.

    ``opener`` (picklable: it is called in each worker process) gives a
    worker its own reader of the same ledger; ``reader`` bounds what they
    check (its size and checkpoints) and serves the exact pass, if needed.
    Below ``parallel_from`` entries (default :data:`PARALLEL_FROM`) no worker is started.
    """
    report = chunked_report(reader, verifier, bits=chunk_bits, opener=opener, workers=workers,
                            parallel_from=PARALLEL_FROM if parallel_from is None else parallel_from)
    if report is None:
        report = walk_ledger(reader, verifier)
    if not report.ok:
        return report
    finding = key_log_finding(reader, verifier)
    if finding is None:
        return report
    return LedgerReport(False, report.size, report.checkpoints, finding.index, finding.fault,
                        finding.detail)


def check_ledger(reader: LedgerReader, verifier: NoteVerifier) -> None:
    """Verify a whole stored ledger; raise :class:`VerificationError` on the first fault."""
    report = verify_ledger(reader, verifier)
    if report.fault is not None:
        raise VerificationError(
            f"{report.fault.value} at index {report.first_bad_index}: {report.detail}")
