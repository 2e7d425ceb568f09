"""The auditor's check of the key log: every checkpoint's key root, recomputed from the entries.

The key log (:mod:`ledger.format.keylog`) is a function of the ledger's
entries, but the checkpointer computes it and witnesses cosign it without
recomputing it. So the auditor does: one more streaming pass over the
entries (only those that look like key entries are parsed), recomputing the
key tree, and at each stored checkpoint compares it with the key log the
checkpoint carries. ``KEY_LOG_MISMATCH``, reported at the checkpoint's last
index: a checkpoint carries a key log the entries do not give, or carries
none after one that did (checkpoints signed before the key log existed
carry none).
"""

from __future__ import annotations

from itertools import islice

from ledger.errors import LedgerError
from ledger.format.keylog import KeyLogFrontier, KeyLogHead, key_leaves, key_log_head
from ledger.format.note import NoteVerifier, open_checkpoint
from ledger.store.storage import LedgerReader
from ledger.verify.report import Fault, Finding

__all__ = ["key_log_finding"]


def key_log_finding(reader: LedgerReader, verifier: NoteVerifier) -> Finding | None:
    """The first checkpoint whose key log the entries do not give, if any.

    Run on a ledger whose entries, tree and checkpoint signatures verified.
    """
    total = reader.size()
    entries = reader.entries(0, total)
    tree, done, carried = KeyLogFrontier(), 0, False
    try:
        for stored in reader.checkpoints():
            if stored.size > total:
                break
            leaves = key_leaves(done, islice(entries, stored.size - done))
            tree.extend(leaf.hash() for leaf in leaves)
            done = stored.size
            at = max(stored.size - 1, 0)
            try:
                head = key_log_head(open_checkpoint(stored.note, verifier))
            except LedgerError as exc:
                return Finding(at, Fault.KEY_LOG_MISMATCH,
                               f"checkpoint at size {stored.size}: {exc}")
            if head is None:
                if carried:
                    return Finding(at, Fault.KEY_LOG_MISMATCH, f"checkpoint at size "
                                   f"{stored.size} carries no key log, an earlier one did")
                continue
            carried = True
            mine = KeyLogHead(tree.size, tree.root())
            if head != mine:
                return Finding(at, Fault.KEY_LOG_MISMATCH, (
                    f"checkpoint at size {stored.size} carries key log {head.size} "
                    f"{head.root.hex()}, the entries give {mine.size} {mine.root.hex()}"))
    finally:
        close = getattr(entries, "close", None)
        if close is not None:
            close()
    return None
