"""An in-memory copy of the committed tree, for proofs without a database round trip.

A proof request reads O(log n) stored nodes; through a database that costs
more than everything else a proof does. But a perfect subtree never changes
once the transaction that wrote it has committed (the ledger is append-only),
and neither does a committed checkpoint. :class:`TreeCache` keeps both for a
*prefix* of the tree that its owner (``ledger.sql.store.SqlStorage``) knows to
be committed: it only extends the prefix up to the size of a checkpoint read
in a transaction that did not write checkpoints itself, and every extension
must reproduce that checkpoint's signed root before it is published. A
transaction that rolls back can therefore never leave its nodes here.

Layout: one ``bytearray`` per level, node ``(level, index)`` at byte offset
``32 * index``: 64 bytes per leaf in all, with no per-node Python object.
A memory budget bounds it; past the budget the lowest levels are dropped
(``min_level`` rises) and proofs fetch those few nodes from storage instead.

Proofs use the perfect-subtree form of RFC 9162's tree: a node ``(l, j)``
whose range runs past the tree size is the hash of the leaves it does hold
(RFC 9162 §2.1.1 splits at the largest power of two, which is the left child
here), and one with no leaves is left out of a path. The partial nodes along
the right edge of a tree of size ``n`` depend on ``n`` alone; they are
computed once per size and kept for a few recent sizes. So are the paths
above level ``upper_level`` (10): a proof reads its lowest ten siblings from
the levels and takes the rest from a dict, the same work at every size (a
million-entry tree keeps ~2,000 such paths a size, bounded in all by
``UPPER_PATHS``).

Thread-safe for readers during an extension: a reader takes the published
size once, and a node read that finds its level too short (dropped under it)
counts as missing and is fetched.
"""

from __future__ import annotations

import hashlib
import struct
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from ledger.errors import StorageError
from ledger.format.merkle import EMPTY_ROOT, HASH_SIZE, Node, frontier
from ledger.store.storage import StoredCheckpoint

__all__ = ["DEFAULT_MAX_BYTES", "Fetch", "LastAppend", "TreeCache"]

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
"""Enough for every node of a million-entry ledger (64 bytes a leaf)."""
EDGE_SIZES = 64
"""Tree sizes whose right-edge nodes are kept (proofs ask for a few recent checkpoints)."""
UPPER_LEVEL = 10
"""Proof paths above this level are kept per tree size (see ``TreeCache._path``)."""
UPPER_PATHS = 1 << 16
"""Kept upper paths, over all sizes: ~10 MB at most (tuples sharing their hashes).

A tree of a million entries has ~2,000 nodes at or above level 10, so this
holds every path of some thirty recent sizes.
"""
CHECKPOINTS = 100_000
"""Committed checkpoints remembered (a day at one per second is 86,400)."""

_node_at = struct.Struct(f"{HASH_SIZE}s").unpack_from
"""One node's hash out of a level, as ``bytes``, with no intermediate copy."""

Fetch = Callable[[Sequence[Node]], Mapping[Node, bytes]]
"""Reads stored nodes by key (``LedgerReader.nodes``), for what the cache does not hold."""


@dataclass(frozen=True, slots=True)
class LastAppend:
    """The tree an append of this process left: its size, last leaf hash and frontier.

    Unlike the rest of the cache it may not be committed yet (it is kept when
    the append is written, before its transaction ends), so it is never
    believed on its own: it serves the next append only for a stored tree
    whose entry ``size - 1`` has this leaf hash (:meth:`extended`). That hash
    chains to every entry before it, so the same hash there means the same
    first ``size`` entries. An append that rolled back, or another's at that
    index after it, fails the check (``ledger.sql.store.SqlStorage.lock_head``).
    """

    head: str
    """The head table's name: the ledger this is of (one cache may see several)."""
    size: int
    last_leaf_hash: bytes
    frontier: Mapping[Node, bytes]
    """The hashes of ``ledger.format.merkle.frontier(size)``, exactly those."""

    def extended(self, head: str, size: int, since: Mapping[Node, bytes],
                 known_leaf_hash: bytes | None) -> dict[Node, bytes] | None:
        """The frontier of the tree of ``size`` leaves, from this one and ``since``, every node
        stored ending at or after :attr:`size`; ``None`` if they do not make it.

        ``known_leaf_hash``: the stored leaf hash of entry ``self.size - 1`` as
        read now. Only if it is :attr:`last_leaf_hash` does the stored tree still
        begin with this one (the hash chains to every entry before): an append
        of this process that rolled back, or another's at the same index, fails
        here. Each frontier node of the larger tree that ends below
        :attr:`size` is one of this tree's frontier (both sizes have its bit
        and every higher one alike); the others end at or after it.
        """
        if head != self.head or size < self.size or known_leaf_hash != self.last_leaf_hash:
            return None
        if size == self.size:
            return dict(self.frontier)
        held = {**self.frontier, **since}
        keys = frontier(size)
        if not all(key in held for key in keys):
            return None
        return {key: held[key] for key in keys}


class TreeCache:
    """Perfect-subtree hashes of a committed prefix of the tree, and committed checkpoints."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES, upper_level: int = UPPER_LEVEL) -> None:
        """An empty cache that holds at most about ``max_bytes`` of node hashes."""
        self.max_bytes = max_bytes
        self.upper_level = upper_level
        self.size = 0
        """Leaves covered: every perfect node ending below it is held (from ``min_level`` up)."""
        self.min_level = 0
        self._levels: list[bytearray] = []
        self._edges: dict[int, list[bytes]] = {}
        self._uppers: dict[int, dict[int, tuple[bytes, ...]]] = {}
        self._kept = 0
        self._checkpoints: dict[int, bytes] = {}
        self._lock = threading.Lock()
        self._last_append: LastAppend | None = None

    # -- checkpoints --
    def signed_root(self, size: int) -> bytes | None:
        """The root of the committed checkpoint of ``size`` leaves, if one was remembered."""
        return self._checkpoints.get(size)

    def remember(self, checkpoint: StoredCheckpoint) -> None:
        """Keep the size and root of a checkpoint the caller knows to be committed.

        Only those: a checkpoint's note gains witness cosignatures later, so
        notes are always read from storage.
        """
        if len(self._checkpoints) >= CHECKPOINTS:
            self._checkpoints.clear()  # a bound, not a policy: they are read again on demand
        self._checkpoints[checkpoint.size] = checkpoint.root

    # -- the last append --
    def last_append(self) -> LastAppend | None:
        """The frontier this process's last append left, if it made one (:class:`LastAppend`)."""
        return self._last_append

    def remember_append(self, last: LastAppend) -> None:
        """Keep ``last`` as :meth:`last_append` (one assignment: readers see it whole)."""
        self._last_append = last

    # -- growing --
    def extend(self, rows: Iterable[tuple[int, int, bytes]], new_size: int,
               fetch: Fetch) -> bool:
        """Grow the prefix to ``new_size``, a remembered checkpoint's size; whether it did.

        ``rows`` must be every stored node ``(level, index, hash)`` at level
        ``>= min_level`` (see :meth:`level_for`) ending in ``[size,
        new_size)``, in storage order. The extension is published only if the
        rows are complete and contiguous and the tree they make has the
        checkpoint's root; otherwise the cache is left as it was.
        """
        with self._lock:
            root = self._checkpoints.get(new_size)
            if root is None:
                return False
            if new_size <= self.size:
                return True
            self._drop_below(self.level_for(new_size))
            levels = self._levels
            while len(levels) < new_size.bit_length():
                levels.append(bytearray())
            before = [len(level) for level in levels]
            if not self._take(rows, new_size) or not self._parents_hold(before) or \
                    self._root(new_size, fetch, new_size) != root:
                for level, length in zip(levels, before, strict=True):
                    del level[length:]
                return False
            self.size = new_size
            return True

    def level_for(self, size: int) -> int:
        """The lowest level kept once the prefix reaches ``size`` (the budget decides)."""
        level = self.min_level
        while 2 * HASH_SIZE * (size >> level) > self.max_bytes:
            level += 1
        return level

    def _drop_below(self, level: int) -> None:
        for lower in range(self.min_level, min(level, len(self._levels))):
            self._levels[lower] = bytearray()
        self.min_level = max(self.min_level, level)

    def _take(self, rows: Iterable[tuple[int, int, bytes]], new_size: int) -> bool:
        levels, low = self._levels, self.min_level
        for level, index, value in rows:
            if level < low or level >= len(levels) or len(value) != HASH_SIZE:
                return False
            row = levels[level]
            if len(row) != HASH_SIZE * index or ((index + 1) << level) > new_size:
                return False  # a gap, a repeat or a node beyond the size
            row += value
        return all(len(levels[level]) == HASH_SIZE * (new_size >> level)
                   for level in range(low, len(levels)))

    def _parents_hold(self, before: list[int]) -> bool:
        """Whether every new node above the lowest level hashes its two children.

        With the root check this pins every node to the signed root: each one
        is on a chain of verified parents up to a node of the root's cover.
        The two children of node ``j`` are 64 contiguous bytes one level down.
        """
        sha256, levels = hashlib.sha256, self._levels
        for level in range(self.min_level + 1, len(levels)):
            below, row = levels[level - 1], levels[level]
            first, stop = before[level] // HASH_SIZE, len(row) // HASH_SIZE
            view = memoryview(below)
            try:
                computed = b"".join([sha256(b"\x01" + view[64 * j:64 * j + 64]).digest()
                                     for j in range(first, stop)])
            finally:
                view.release()
            if computed != row[HASH_SIZE * first:]:
                return False
        return True

    # -- proofs --
    def covers(self, size: int) -> bool:
        """Whether proofs for a tree of ``size`` leaves can come from here."""
        return 0 < size <= self.size

    def root(self, size: int, fetch: Fetch) -> bytes:
        """The RFC 9162 root of the first ``size`` leaves (``covers(size)``)."""
        return self._root(size, fetch, self.size)

    def inclusion_proof(self, index: int, size: int, fetch: Fetch) -> list[bytes]:
        """RFC 9162 §2.1.3.1 inclusion proof of leaf ``index`` (``0 <= index < size``)."""
        return self._path(0, index, size, fetch, covered=self.size)

    def consistency_proof(self, old_size: int, new_size: int, fetch: Fetch) -> list[bytes]:
        """RFC 9162 §2.1.4.1 consistency proof (``0 < old_size < new_size``).

        SUBPROOF descends to the perfect node that ends at ``old_size``
        (level = trailing zero bits of ``old_size``), which starts the proof
        unless it is the whole old tree, then climbs like an inclusion path.
        """
        covered = self.size
        level = (old_size & -old_size).bit_length() - 1
        index = (old_size >> level) - 1
        path = self._path(level, index, new_size, fetch, covered=covered)
        if index == 0:
            return path
        return [self._nodes([(level, index)], fetch, covered)[0], *path]

    def _path(self, level: int, index: int, size: int, fetch: Fetch, *,
              covered: int) -> list[bytes]:
        """Siblings of node ``(level, index)`` up to the root of a tree of ``size`` leaves.

        In a committed tree that reaches above ``upper_level`` the path splits
        there: the siblings below it lie inside the aligned subtree of node
        ``(upper_level, a)`` (a node of every larger tree, RFC 9162 §2.1.1),
        and those above are the path of that node, which depends on ``a`` and
        ``size`` alone and is kept (:meth:`_upper`). So a proof reads the same
        number of nodes at every tree size; only the kept part grows.
        """
        top = self.upper_level
        if level < top and size <= covered and (size - 1) >> top:
            a = index >> (top - level)
            within = min(size, (a + 1) << top)
            lower = self._climb(level, index, within, fetch, covered=covered, levels=top - level)
            kept = self._uppers.get(size)
            upper = kept.get(a << 6 | top) if kept is not None else None
            lower += upper if upper is not None else self._upper(a, size, fetch, covered)
            return lower
        return self._climb(level, index, size, fetch, covered=covered, levels=size.bit_length())

    def _climb(self, level: int, index: int, size: int, fetch: Fetch, *, covered: int,
               levels: int) -> list[bytes]:
        """The siblings of the path from ``(level, index)``, at most ``levels`` of them up.

        Below ``inner`` relative levels the path runs inside perfect subtrees
        (every sibling is perfect), at ``inner - 1`` the sibling is the right
        edge's node (perfect or partial), and above it the path *is* the right
        edge, whose siblings are perfect left ones where it is a right child.
        """
        last = (size - 1) >> level
        inner = (index ^ last).bit_length()
        keys = [(level + r, (index >> r) ^ 1) for r in range(inner - 1)]
        edge_at = edge_level = -1
        if inner:
            up, sibling = level + inner - 1, last >> (inner - 1)
            if (sibling + 1) << up <= size:
                keys.append((up, sibling))
            else:
                edge_at, edge_level = len(keys), up
        keys += [(level + r, (index >> r) ^ 1)
                 for r in range(inner, min(last.bit_length(), levels)) if (index >> r) & 1]
        proof = self._nodes(keys, fetch, covered)
        if edge_at >= 0:
            proof.insert(edge_at, self._edge(size, fetch, covered)[edge_level])
        return proof

    def _upper(self, index: int, size: int, fetch: Fetch, covered: int) -> tuple[bytes, ...]:
        """The path of node ``(upper_level, index)`` in the committed tree of ``size`` leaves.

        Kept per node on the way up, so a miss climbs only to the first kept
        ancestor: node ``(l, j)``'s path is its sibling (if the tree has one
        there) followed by the path of ``(l + 1, j // 2)``. Keyed ``j << 6 | l``.
        """
        kept = self._uppers.get(size)
        if kept is None:
            if len(self._uppers) >= EDGE_SIZES or self._kept >= UPPER_PATHS:
                self._uppers.clear()
                self._kept = 0
            kept = self._uppers[size] = {}
        depth = (size - 1).bit_length()
        level, j = self.upper_level, index
        climbed: list[Node] = []
        tail: tuple[bytes, ...] = ()
        while level < depth:
            found = kept.get(j << 6 | level)
            if found is not None:
                tail = found
                break
            climbed.append((level, j))
            level, j = level + 1, j >> 1
        # A node's sibling j ^ 1: none past the size, else perfect or the edge's partial node.
        perfect = [(up, j ^ 1) for up, j in climbed if ((j ^ 1) + 1) << up <= size]
        values = self._nodes(perfect, fetch, covered)
        for up, j in reversed(climbed):
            if ((j ^ 1) + 1) << up <= size:
                tail = (values.pop(), *tail)
            elif (j ^ 1) << up < size:
                tail = (self._edge(size, fetch, covered)[up], *tail)
            kept[j << 6 | up] = tail
        self._kept += len(climbed)
        return tail

    def _root(self, size: int, fetch: Fetch, covered: int) -> bytes:
        if size == 0:
            return EMPTY_ROOT
        return self._edge(size, fetch, covered)[-1]

    def _edge(self, size: int, fetch: Fetch, covered: int) -> list[bytes]:
        """Hashes of the nodes ``(l, (size - 1) >> l)``, l = 0..depth: the right edge.

        Node ``l`` covers ``[((size - 1) >> l) << l, size)``; its left child is
        perfect exactly when the range holds more than half of ``2**l`` leaves.
        """
        found = self._edges.get(size)
        if found is not None:
            return found
        last = size - 1
        depth = last.bit_length()
        lefts = [(up - 1, (last >> up) << 1) for up in range(1, depth + 1)
                 if size - ((last >> up) << up) > 1 << (up - 1)]
        values = dict(zip(lefts, self._nodes(lefts, fetch, covered), strict=True))
        acc = self._nodes([(0, last)], fetch, covered)[0]
        edge = [acc]
        sha256 = hashlib.sha256
        for up in range(1, depth + 1):
            left = values.get((up - 1, (last >> up) << 1))
            if left is not None:
                acc = sha256(b"\x01" + left + acc).digest()
            edge.append(acc)
        if size <= self.size:  # the published (committed) prefix: safe to keep
            if len(self._edges) >= EDGE_SIZES:
                self._edges.pop(next(iter(self._edges)))
            self._edges[size] = edge
        return edge

    def _nodes(self, keys: Sequence[Node], fetch: Fetch, covered: int) -> list[bytes]:
        """The hashes of perfect nodes ``keys``: from memory where held, else one fetch."""
        levels, low = self._levels, self.min_level
        try:
            out = [_node_at(levels[level], HASH_SIZE * index)[0]
                   if level >= low and ((index + 1) << level) <= covered else b""
                   for level, index in keys]
        except struct.error:  # a level dropped under this reader: fetch them all
            out = [b""] * len(keys)
        if b"" in out:  # not held (below the budget's lowest level, or beyond the prefix)
            missing = [key for key, value in zip(keys, out, strict=True) if not value]
            stored = fetch(missing)
            for at, key in enumerate(keys):
                if not out[at]:
                    value = stored.get(key, b"")
                    if len(value) != HASH_SIZE:
                        raise StorageError(f"tree node {key} missing from storage")
                    out[at] = value
        return out
