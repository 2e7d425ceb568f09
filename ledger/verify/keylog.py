"""The auditor's check of the key log: every checkpoint's key root, recomputed from the entries.

The key log (:mod:`ledger.format.keylog`) is a function of the ledger's
entries, but the checkpointer computes it and witnesses cosign it without
recomputing it. So the auditor does: one more streaming pass over the
entries (only those that look like key entries are parsed), recomputing the
key tree, and at each checkpoint compares it with the key log the
checkpoint carries. ``KEY_LOG_MISMATCH``, reported at the checkpoint's last
index: a checkpoint carries a key log the entries do not give, or carries
none after one that did (checkpoints signed before the key log existed
carry none).

:class:`KeyLogCheck` is that pass, fed entry by entry or in runs; the
server-side verifier (:func:`key_log_finding`) and the auditor's client
(``client.audit``, live and on an export) both run it, the client resuming
it from the frontier it kept after its last run.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice

from ledger.errors import LedgerError, VerificationError
from ledger.format.keylog import (
    KeyLogFrontier,
    KeyLogHead,
    key_leaf_of,
    key_leaves,
    key_log_head,
)
from ledger.format.note import Checkpoint, NoteVerifier, open_checkpoint
from ledger.store.storage import LedgerReader
from ledger.verify.report import Fault, Finding

__all__ = ["KeyLogCheck", "key_log_finding"]


class KeyLogCheck:
    """The key tree of the entries seen so far, and whether a checkpoint carried a key log yet.

    Feed it every entry in ledger order (:meth:`add` or :meth:`extend`),
    then :meth:`check` each checkpoint at its size. To resume, start from
    the :class:`~ledger.format.keylog.KeyLogFrontier` and ``carried`` of
    the last run.
    """

    def __init__(self, tree: KeyLogFrontier | None = None, *, carried: bool = False) -> None:
        """Start with an empty key tree, or resume from ``tree``."""
        self.tree = tree if tree is not None else KeyLogFrontier()
        self.carried = carried

    def add(self, index: int, entry: bytes) -> None:
        """Take ledger entry ``index`` (its exact bytes); only a key entry adds a leaf."""
        leaf = key_leaf_of(index, entry)
        if leaf is not None:
            self.tree.extend((leaf.hash(),))

    def extend(self, first: int, entries: Iterable[bytes]) -> None:
        """Take the entries ``first, first + 1, ...`` in order."""
        self.tree.extend(leaf.hash() for leaf in key_leaves(first, entries))

    def check(self, checkpoint: Checkpoint) -> None:
        """Raise :class:`~ledger.errors.VerificationError` unless ``checkpoint``'s key log is ours.

        Call it when exactly the checkpoint's ``size`` entries were taken. A
        checkpoint without the line passes until one carried it.
        """
        try:
            head = key_log_head(checkpoint)
        except LedgerError as exc:
            raise VerificationError(f"checkpoint at size {checkpoint.size}: {exc}") from exc
        if head is None:
            if self.carried:
                raise VerificationError(f"checkpoint at size {checkpoint.size} carries no "
                                        "key log, an earlier one did")
            return
        self.carried = True
        mine = KeyLogHead(self.tree.size, self.tree.root())
        if head != mine:
            raise VerificationError(
                f"checkpoint at size {checkpoint.size} carries key log {head.size} "
                f"{head.root.hex()}, the entries give {mine.size} {mine.root.hex()}")


def key_log_finding(reader: LedgerReader, verifier: NoteVerifier) -> Finding | None:
    """The first checkpoint whose key log the entries do not give, if any.

    Run on a ledger whose entries, tree and checkpoint signatures verified.
    """
    total = reader.size()
    entries = reader.entries(0, total)
    check, done = KeyLogCheck(), 0
    try:
        for stored in reader.checkpoints():
            if stored.size > total:
                break
            check.extend(done, islice(entries, stored.size - done))
            done = stored.size
            at = max(stored.size - 1, 0)
            try:
                check.check(open_checkpoint(stored.note, verifier))
            except LedgerError as exc:
                return Finding(at, Fault.KEY_LOG_MISMATCH, str(exc))
    finally:
        close = getattr(entries, "close", None)
        if close is not None:
            close()
    return None
