"""The exact pass: one streaming walk over a whole stored ledger, naming the first fault.

See :mod:`ledger.verify.verifier` for what it checks and how each fault is classified.
"""

from __future__ import annotations

import hashlib
import itertools
from binascii import hexlify
from collections.abc import Iterator

from ledger.errors import EntryFormatError, NoteFormatError, SignatureError, StorageError
from ledger.format import merkle
from ledger.format.checker import EntryChecker
from ledger.format.note import NoteVerifier, open_checkpoint
from ledger.store.storage import LedgerReader, StoredCheckpoint
from ledger.verify.report import Fault, Finding, LedgerReport
from ledger.verify.storecheck import check_storage

__all__ = ["BATCH", "fold", "walk_ledger"]

_ZEROS = b"0" * 64
_NO_NODE = b""  # what the node stream gives once it is exhausted
_NEVER = 2**64  # a size no checkpoint has
BATCH = 10_000
"""Entries checked together on the fast path (and at most held in memory)."""


def _at(size: int) -> int:
    """The index a checkpoint fault is reported at: the last entry it covers."""
    return max(size - 1, 0)


def _tree_nodes(first: int, leaves: list[bytes], stack: list[bytes]) -> list[bytes]:
    """Append ``leaves`` from leaf ``first`` to the right frontier ``stack`` (in place).

    Returns the hashes of every perfect node they complete, leaves included,
    in storage order (by last leaf covered, then by level; RFC 9162 §2.1.1).
    """
    sha = hashlib.sha256
    out: list[bytes] = []
    add, push, pop = out.append, stack.append, stack.pop
    for index, value in enumerate(leaves, first):
        add(value)
        while index & 1:
            value = sha(b"\x01" + pop() + value).digest()
            add(value)
            index >>= 1
        push(value)
    return out


def fold(stack: list[bytes]) -> bytes:
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
        self.nodes: Iterator[bytes] = iter(reader.iter_node_hashes())
        self.cps: Iterator[StoredCheckpoint] = iter(reader.checkpoints())
        self.pending: StoredCheckpoint | None = next(self.cps, None)
        self.checker = EntryChecker()
        self.stack: list[bytes] = []
        self.count = 0
        self.verified = 0
        self.last_cp_size = -1
        self.prev_hex = _ZEROS  # what entry ``count`` must give as prev
        self.last_leaf = b""

    def run(self) -> Finding | None:
        """Scan every entry, then what is left after the last one."""
        return self._scan() or self._tail()

    def _scan(self) -> Finding | None:
        return self._checkpoints_due(0) or self._entries()

    def _entries(self) -> Finding | None:
        """Batches up to the next checkpoint: fast when clean, else entry by entry."""
        next_cp = self.pending.size if self.pending is not None else _NEVER
        while True:
            p = self.count
            raws = list(itertools.islice(self.entries, min(next_cp - p, BATCH)))
            if not raws:
                return None
            stack = list(self.stack)
            rows = self._fast_batch(p, raws)
            if rows is None:  # some entry or node needs a closer look: replay the batch
                self.stack = stack
                finding = self._slow_batch(p, raws)
                if finding is not None:
                    return finding
            self.count = p = p + len(raws)
            self.prev_hex = hexlify(self.last_leaf)
            if next_cp <= p:
                finding = self._checkpoints_due(p)
                if finding is not None:
                    return finding
                next_cp = self.pending.size if self.pending is not None else _NEVER

    def _fast_batch(self, p: int, raws: list[bytes]) -> list[bytes] | None:
        """Check entries ``p, p+1, ...`` with C-level maps and compare whole lists.

        Returns the stored nodes it consumed, or ``None`` if anything differs
        (the caller then replays the batch through :meth:`_slow_batch`, which
        names the fault, or accepts entries the fast check does not cover).
        Hashing is the only per-entry Python code.
        """
        fields = self.checker.check_batch(raws)
        if fields is None:
            return None
        indices, prevs = fields
        sha = hashlib.sha256
        leaves = [sha(b"\x00" + raw).digest() for raw in raws]
        if prevs[0] != self.prev_hex or list(prevs[1:]) != list(map(hexlify, leaves[:-1])):
            return None
        if list(map(int, indices)) != list(range(p, p + len(raws))):
            return None
        expected = _tree_nodes(p, leaves, self.stack)
        rows = list(itertools.islice(self.nodes, len(expected)))
        if rows != expected:
            self.nodes = itertools.chain(rows, self.nodes)  # the replay reads them again
            return None
        self.last_leaf = leaves[-1]
        return rows

    def _slow_batch(self, p: int, raws: list[bytes]) -> Finding | None:
        """Check entries ``p, p+1, ...`` one by one; classify the first fault."""
        sha, nodes, stack = hashlib.sha256, self.nodes, self.stack
        prev_hex = self.prev_hex
        try:
            for k, (raw, index, prev) in enumerate(self.checker.scan(raws)):
                leaf = sha(b"\x00" + raw).digest()
                # Equal hashes imply the right node (keys are unique, hashes are
                # preimage resistant), so keys are only looked at after a mismatch.
                if next(nodes, _NO_NODE) != leaf or index != p or prev != prev_hex:
                    self.entries = itertools.chain(raws[k + 1:], self.entries)
                    self.count = p
                    return self._classify(p, index, prev, prev_hex, leaf=leaf)
                value, idx, level = leaf, p, 0
                while idx & 1:
                    value = sha(b"\x01" + stack.pop() + value).digest()
                    idx, level = idx >> 1, level + 1
                    if next(nodes, _NO_NODE) != value:
                        self.count = p
                        return Finding(idx << level, Fault.BAD_NODE,
                                        f"stored node ({level}, {idx}) is missing or wrong")
                stack.append(value)
                prev_hex = hexlify(leaf)
                self.last_leaf = leaf
                p += 1
        except EntryFormatError as exc:
            self.count = p
            return Finding(p, Fault.MALFORMED_ENTRY, f"entry {p}: {exc}")
        return None

    # -- checkpoints --
    def _checkpoints_due(self, p: int) -> Finding | None:
        self.count = p
        while self.pending is not None and self.pending.size <= p:
            finding = self._checkpoint(fold(self.stack))
            if finding is not None:
                return finding
        return None

    def _open(self, stored: StoredCheckpoint) -> Finding | None:
        size = stored.size
        try:
            signed = open_checkpoint(stored.note, self.verifier)
        except (SignatureError, NoteFormatError) as exc:
            return Finding(_at(size), Fault.BAD_CHECKPOINT_SIGNATURE,
                            f"checkpoint at size {size}: {exc}")
        if signed.size != size or signed.root != stored.root:
            return Finding(_at(size), Fault.CHECKPOINT_ROOT_MISMATCH,
                            f"checkpoint at size {size}: stored size/root differ from the note")
        return None

    def _checkpoint(self, root: bytes) -> Finding | None:
        stored = self.pending
        if stored is None:
            return None
        self.pending = next(self.cps, None)
        finding = self._open(stored)
        if finding is not None:
            return finding
        if stored.size < self.count or stored.size <= self.last_cp_size:
            return Finding(_at(stored.size), Fault.FORK,
                            f"checkpoint at size {stored.size} follows one at {self.last_cp_size}")
        self.last_cp_size = stored.size
        if stored.root == root:
            self.verified += 1
            return None
        kind = Fault.FORK if self._later_matches_tree() else Fault.CHECKPOINT_ROOT_MISMATCH
        return Finding(_at(stored.size), kind,
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
                  *, leaf: bytes) -> Finding:
        tree_leaf = self._leaf(p)
        nxt = next(self.entries, None)
        if tree_leaf is None and self._leaf(p + 1) is None:
            return Finding(p, Fault.INSERTED, f"entry {p} has no leaf in the tree")
        if index != p and self._leaf(index) == leaf:
            return self._misplaced(p, index, nxt)
        if nxt is not None and leaf != tree_leaf and merkle.leaf_hash(nxt) == tree_leaf:
            return Finding(p, Fault.INSERTED, f"entry {p} was inserted before the tree's {p}")
        if index == p and leaf != tree_leaf:
            if self._attested(p, leaf, nxt):
                return Finding(p, Fault.BAD_NODE, f"stored leaf node {p} is wrong or missing")
            return Finding(p, Fault.MODIFIED_ENTRY, f"entry {p} differs from the tree's leaf {p}")
        if index != p:
            return Finding(p, Fault.MODIFIED_ENTRY, f"entry {p} says index {index}")
        if prev != prev_hex:
            return Finding(p - 1, Fault.MODIFIED_ENTRY,
                            f"entry {p} does not link to entry {p - 1}")
        return Finding(p, Fault.BAD_NODE, f"stored nodes out of order at leaf {p}")

    def _misplaced(self, p: int, index: int, nxt: bytes | None) -> Finding:
        if index < p:
            return Finding(p, Fault.INSERTED, f"entry {p} repeats entry {index}")
        following = self._index_of(nxt)
        if nxt is None or following == index + 1:
            return Finding(p, Fault.MISSING_ENTRY, f"entries {p} to {index - 1} are missing")
        return Finding(p, Fault.REORDERED, f"entry {index} stands at position {p}")

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
                return EntryChecker().check(nxt)[1] == hexlify(leaf)
            except EntryFormatError:
                return False
        if p & 1:
            found = self.reader.nodes([(0, p - 1), (1, p >> 1)])
            sibling, parent = found.get((0, p - 1)), found.get((1, p >> 1))
            return sibling is not None and parent == merkle.node_hash(sibling, leaf)
        return self._signed_at(p + 1) and fold([*self.stack, leaf]) == \
            (self.pending.root if self.pending is not None else b"")

    # -- after the last entry --
    def _tail(self) -> Finding | None:
        count = self.count
        while self.pending is not None:
            stored = self.pending
            self.pending = next(self.cps, None)
            finding = self._open(stored)
            if finding is not None:
                return finding
            if stored.size > count:
                return Finding(count, Fault.TRUNCATED,
                                f"a signed checkpoint has size {stored.size}, "
                                f"only {count} entries are stored")
            return Finding(_at(stored.size), Fault.FORK,
                            f"checkpoint at size {stored.size} is out of order")
        if count < self.total:
            return Finding(count, Fault.MISSING_ENTRY,
                            f"storage holds {self.total} entries, {count} were read")
        if next(self.nodes, _NO_NODE) == _NO_NODE:
            return None
        # A stored node beyond the entries: find its key (a second pass over
        # the keyed stream, paid only when the ledger is already faulty).
        key = next(k for k, _ in self.reader.iter_nodes() if ((k[1] + 1) << k[0]) - 1 >= count)
        if key == (0, count):
            return Finding(count, Fault.MISSING_ENTRY, f"the tree has a leaf {count}, no entry")
        return Finding(key[1] << key[0], Fault.BAD_NODE, f"stray stored node {key}")


def walk_ledger(reader: LedgerReader, verifier: NoteVerifier) -> LedgerReport:
    """Verify a whole stored ledger in one exact pass; report the first fault, if any."""
    run = _Pass(reader, verifier)
    finding = run.run() or check_storage(reader, run.count)
    if finding is None:
        return LedgerReport(True, run.count, run.verified, None, None,
                            f"{run.count} entries and {run.verified} checkpoints verified")
    return LedgerReport(False, run.count, run.verified, finding.index, finding.fault,
                        finding.detail)
