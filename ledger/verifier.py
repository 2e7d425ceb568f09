"""The auditor's verifier: one streaming pass over a whole stored ledger.

:func:`verify_ledger` reads entries and tree nodes together, in order, and
keeps only O(log n) state (the tree's right frontier). For every position
``p`` it checks that the entry is canonical, says ``index == p``, links by
``prev`` to the leaf hash of entry ``p - 1``, and that every stored node
completed by leaf ``p`` equals the recomputed one (RFC 9162 §2.1.1). When the
pass reaches the size of a stored checkpoint it checks the log's signature
(C2SP signed-note) and that the signed root equals the recomputed root. Two
checkpoints that both equal roots recomputed from one leaf sequence are
consistent (RFC 9162 §2.1.4), so no proof is needed between them.

The pass stops at the first fault. Only then does it read a little more
(the next entry, a few nodes by key) to say what went wrong:

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
"""

from __future__ import annotations

import binascii
import enum
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

from ledger import merkle
from ledger.entry import EntryChecker
from ledger.errors import (
    EntryFormatError,
    NoteFormatError,
    SignatureError,
    StorageError,
    VerificationError,
)
from ledger.note import NoteVerifier, open_checkpoint
from ledger.storage import LedgerReader, StoredCheckpoint

_ZEROS = b"0" * 64
_NO_NODE: tuple[merkle.Node, bytes] = ((-1, -1), b"")
_NEVER = 2**64  # a size no checkpoint has


class Fault(enum.Enum):
    """The kind of the first fault found."""

    MODIFIED_ENTRY = "modified_entry"
    MISSING_ENTRY = "missing_entry"
    REORDERED = "reordered"
    INSERTED = "inserted"
    BAD_NODE = "bad_node"
    BAD_CHECKPOINT_SIGNATURE = "bad_checkpoint_signature"
    CHECKPOINT_ROOT_MISMATCH = "checkpoint_root_mismatch"
    FORK = "fork"
    TRUNCATED = "truncated"
    MALFORMED_ENTRY = "malformed_entry"


@dataclass(frozen=True)
class LedgerReport:
    """What the verifier found: a clean bill, or the first bad index and the fault kind."""

    ok: bool
    size: int
    checkpoints: int
    first_bad_index: int | None
    fault: Fault | None
    detail: str


@dataclass(frozen=True)
class _Finding:
    index: int
    fault: Fault
    detail: str


def _at(size: int) -> int:
    """The index a checkpoint fault is reported at: the last entry it covers."""
    return max(size - 1, 0)


def _fold(stack: list[bytes]) -> bytes:
    """The RFC 9162 root from the right frontier (largest subtree first)."""
    if not stack:
        return merkle.EMPTY_ROOT
    acc = stack[-1]
    for value in reversed(stack[:-1]):
        acc = merkle.node_hash(value, acc)
    return acc


class _Pass:
    """State of one verification pass."""

    def __init__(self, reader: LedgerReader, verifier: NoteVerifier) -> None:
        self.reader = reader
        self.verifier = verifier
        self.total = reader.size()
        self.entries: Iterator[bytes] = iter(reader.entries(0, self.total))
        self.nodes: Iterator[tuple[merkle.Node, bytes]] = iter(reader.iter_nodes())
        self.cps: Iterator[StoredCheckpoint] = iter(reader.checkpoints())
        self.pending: StoredCheckpoint | None = next(self.cps, None)
        self.checker = EntryChecker()
        self.stack: list[bytes] = []
        self.count = 0
        self.verified = 0
        self.last_cp_size = -1

    def run(self) -> _Finding | None:
        """Scan every entry, then what is left after the last one."""
        return self._scan() or self._tail()

    def _scan(self) -> _Finding | None:
        finding = self._checkpoints_due(0)
        if finding is not None:
            return finding
        try:
            return self._entries()
        except EntryFormatError as exc:  # only the entry scan raises it
            return _Finding(self.count, Fault.MALFORMED_ENTRY, f"entry {self.count}: {exc}")

    def _entries(self) -> _Finding | None:
        # The hot loop: flat, on locals, allocating little.
        sha, hexlify = hashlib.sha256, binascii.hexlify
        nodes, stack = self.nodes, self.stack
        prev_hex, p = _ZEROS, 0
        next_cp = self.pending.size if self.pending is not None else _NEVER
        self.count = 0
        for raw, index, prev in self.checker.scan(self.entries):
            leaf = sha(b"\x00" + raw).digest()
            # Equal hashes imply the right node (keys are unique, hashes are
            # preimage resistant), so keys are only looked at after a mismatch.
            if next(nodes, _NO_NODE)[1] != leaf or index != p or prev != prev_hex:
                return self._classify(p, index, prev, prev_hex, leaf)
            value, idx, level = leaf, p, 0
            while idx & 1:
                value = sha(b"\x01" + stack.pop() + value).digest()
                idx, level = idx >> 1, level + 1
                if next(nodes, _NO_NODE)[1] != value:
                    return _Finding(idx << level, Fault.BAD_NODE,
                                    f"stored node ({level}, {idx}) is missing or wrong")
            stack.append(value)
            prev_hex = hexlify(leaf)
            p += 1
            self.count = p
            if next_cp <= p:
                finding = self._checkpoints_due(p)
                if finding is not None:
                    return finding
                next_cp = self.pending.size if self.pending is not None else _NEVER
        return None

    # -- checkpoints --
    def _checkpoints_due(self, p: int) -> _Finding | None:
        self.count = p
        while self.pending is not None and self.pending.size <= p:
            finding = self._checkpoint(_fold(self.stack))
            if finding is not None:
                return finding
        return None

    def _open(self, stored: StoredCheckpoint) -> _Finding | None:
        size = stored.size
        try:
            signed = open_checkpoint(stored.note, self.verifier)
        except (SignatureError, NoteFormatError) as exc:
            return _Finding(_at(size), Fault.BAD_CHECKPOINT_SIGNATURE,
                            f"checkpoint at size {size}: {exc}")
        if signed.size != size or signed.root != stored.root:
            return _Finding(_at(size), Fault.CHECKPOINT_ROOT_MISMATCH,
                            f"checkpoint at size {size}: stored size/root differ from the note")
        return None

    def _checkpoint(self, root: bytes) -> _Finding | None:
        stored = self.pending
        if stored is None:
            return None
        self.pending = next(self.cps, None)
        finding = self._open(stored)
        if finding is not None:
            return finding
        if stored.size < self.count or stored.size <= self.last_cp_size:
            return _Finding(_at(stored.size), Fault.FORK,
                            f"checkpoint at size {stored.size} follows one at {self.last_cp_size}")
        self.last_cp_size = stored.size
        if stored.root == root:
            self.verified += 1
            return None
        kind = Fault.FORK if self._later_matches_tree() else Fault.CHECKPOINT_ROOT_MISMATCH
        return _Finding(_at(stored.size), kind,
                        f"checkpoint at size {stored.size} signs root {stored.root.hex()}, "
                        f"the entries give {root.hex()}")

    def _later_matches_tree(self) -> bool:
        later = self.pending
        if later is None or self._open(later) is not None:
            return False
        try:
            return merkle.root(self.reader, later.size) == later.root
        except (StorageError, ValueError):
            return False

    def _signed_at(self, size: int) -> bool:
        """Whether the next checkpoint has ``size`` and a valid signature."""
        return self.pending is not None and self.pending.size == size and \
            self._open(self.pending) is None

    # -- classification of the first fault at an entry --
    def _leaf(self, index: int) -> bytes | None:
        if index < 0:
            return None
        return self.reader.nodes([(0, index)]).get((0, index))

    def _classify(self, p: int, index: int, prev: bytes, prev_hex: bytes,
                  leaf: bytes) -> _Finding:
        tree_leaf = self._leaf(p)
        nxt = next(self.entries, None)
        if tree_leaf is None and self._leaf(p + 1) is None:
            return _Finding(p, Fault.INSERTED, f"entry {p} has no leaf in the tree")
        if index != p and self._leaf(index) == leaf:
            return self._misplaced(p, index, nxt)
        if nxt is not None and leaf != tree_leaf and merkle.leaf_hash(nxt) == tree_leaf:
            return _Finding(p, Fault.INSERTED, f"entry {p} was inserted before the tree's {p}")
        if index == p and leaf != tree_leaf:
            if self._attested(p, leaf, nxt):
                return _Finding(p, Fault.BAD_NODE, f"stored leaf node {p} is wrong or missing")
            return _Finding(p, Fault.MODIFIED_ENTRY, f"entry {p} differs from the tree's leaf {p}")
        if index != p:
            return _Finding(p, Fault.MODIFIED_ENTRY, f"entry {p} says index {index}")
        if prev != prev_hex:
            return _Finding(p - 1, Fault.MODIFIED_ENTRY,
                            f"entry {p} does not link to entry {p - 1}")
        return _Finding(p, Fault.BAD_NODE, f"stored nodes out of order at leaf {p}")

    def _misplaced(self, p: int, index: int, nxt: bytes | None) -> _Finding:
        if index < p:
            return _Finding(p, Fault.INSERTED, f"entry {p} repeats entry {index}")
        following = self._index_of(nxt)
        if nxt is None or following == index + 1:
            return _Finding(p, Fault.MISSING_ENTRY, f"entries {p} to {index - 1} are missing")
        return _Finding(p, Fault.REORDERED, f"entry {index} stands at position {p}")

    def _index_of(self, raw: bytes | None) -> int | None:
        if raw is None:
            return None
        try:
            return EntryChecker().check(raw)[0]
        except EntryFormatError:
            return None

    def _attested(self, p: int, leaf: bytes, nxt: bytes | None) -> bool:
        """Whether anything besides the stored leaf node vouches for entry ``p``'s bytes."""
        if nxt is not None:
            try:
                return EntryChecker().check(nxt)[1] == binascii.hexlify(leaf)
            except EntryFormatError:
                return False
        if p & 1:
            found = self.reader.nodes([(0, p - 1), (1, p >> 1)])
            sibling, parent = found.get((0, p - 1)), found.get((1, p >> 1))
            return sibling is not None and parent == merkle.node_hash(sibling, leaf)
        return self._signed_at(p + 1) and _fold([*self.stack, leaf]) == \
            (self.pending.root if self.pending is not None else b"")

    # -- after the last entry --
    def _tail(self) -> _Finding | None:
        count = self.count
        while self.pending is not None:
            stored = self.pending
            self.pending = next(self.cps, None)
            finding = self._open(stored)
            if finding is not None:
                return finding
            if stored.size > count:
                return _Finding(count, Fault.TRUNCATED,
                                f"a signed checkpoint has size {stored.size}, "
                                f"only {count} entries are stored")
            return _Finding(_at(stored.size), Fault.FORK,
                            f"checkpoint at size {stored.size} is out of order")
        if count < self.total:
            return _Finding(count, Fault.MISSING_ENTRY,
                            f"storage holds {self.total} entries, {count} were read")
        key, _ = next(self.nodes, _NO_NODE)
        if key == (0, count):
            return _Finding(count, Fault.MISSING_ENTRY, f"the tree has a leaf {count}, no entry")
        if key != _NO_NODE[0]:
            return _Finding(key[1] << key[0], Fault.BAD_NODE, f"stray stored node {key}")
        return None


def verify_ledger(reader: LedgerReader, verifier: NoteVerifier) -> LedgerReport:
    """Verify a whole stored ledger in one pass; report the first fault, if any."""
    run = _Pass(reader, verifier)
    finding = run.run()
    if finding is None:
        return LedgerReport(True, run.count, run.verified, None, None,
                            f"{run.count} entries and {run.verified} checkpoints verified")
    return LedgerReport(False, run.count, run.verified, finding.index, finding.fault,
                        finding.detail)


def check_ledger(reader: LedgerReader, verifier: NoteVerifier) -> None:
    """Verify a whole stored ledger; raise :class:`VerificationError` on the first fault."""
    report = verify_ledger(reader, verifier)
    if report.fault is not None:
        raise VerificationError(
            f"{report.fault.value} at index {report.first_bad_index}: {report.detail}")
