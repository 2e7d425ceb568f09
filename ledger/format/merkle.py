"""RFC 9162 Merkle tree over SHA-256: hashing, roots and proof generation.

Leaves are indexed from 0. The tree hash of ``n`` leaves follows RFC 9162
§2.1.1: the empty tree hashes to SHA-256(""), a leaf to SHA-256(0x00 || d),
an inner node to SHA-256(0x01 || left || right), splitting a range of ``n > 1``
leaves at the largest power of two smaller than ``n``.

Storage keeps only *perfect* subtrees, addressed as ``(level, index)``: the
node covering leaves ``[index * 2**level, (index + 1) * 2**level)``. Any RFC
9162 subtree ``[lo, hi)`` that appears in a root or proof is the right fold of
at most log2(n) perfect subtrees (the binary digits of ``hi - lo``), so a root
or a proof costs O(log n) node reads, fetched in one batch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from ledger.errors import StorageError

HASH_SIZE = 32
Node = tuple[int, int]
"""A perfect subtree: ``(level, index)``."""

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(entry: bytes) -> bytes:
    """RFC 9162 §2.1.1 leaf hash: SHA-256(0x00 || entry)."""
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 §2.1.1 interior node hash: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


class NodeReader(Protocol):
    """Reads stored perfect-subtree hashes."""

    def nodes(self, keys: Sequence[Node]) -> Mapping[Node, bytes]:
        """Return the hashes of ``keys`` that are stored (absent keys are left out)."""
        ...


def perfect_cover(lo: int, hi: int) -> list[Node]:
    """The perfect subtrees, left to right, whose right fold is the RFC 9162 hash of [lo, hi).

    ``lo`` must be a multiple of the largest power of two not exceeding
    ``hi - lo``, which holds for every subtree of an RFC 9162 tree.
    """
    keys: list[Node] = []
    while lo < hi:
        level = (hi - lo).bit_length() - 1
        keys.append((level, lo >> level))
        lo += 1 << level
    return keys


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges of the audit path of ``index`` in a tree of ``size``, leaf first."""
    ranges: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = split_point(hi - lo)
        if index < lo + k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo = lo + k
    ranges.reverse()
    return ranges


def consistency_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """The leaf ranges of RFC 9162 §2.1.4.1 SUBPROOF(m, D[0:n], true), in proof order."""
    ranges: list[tuple[int, int]] = []
    m, lo, hi, complete = old_size, 0, new_size, True
    while m != hi:
        k = split_point(hi - lo)
        if m - lo <= k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo = lo + k
            complete = False
    if not complete:
        ranges.append((lo, hi))
    ranges.reverse()
    return ranges


def _fold(reader: NodeReader, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
    covers = [perfect_cover(lo, hi) for lo, hi in ranges]
    wanted = sorted({key for cover in covers for key in cover})
    found = reader.nodes(wanted)
    missing = [key for key in wanted if key not in found]
    if missing:
        raise StorageError(f"tree nodes missing from storage: {missing[:4]}")
    hashes: list[bytes] = []
    for cover in covers:
        acc = found[cover[-1]]
        for key in reversed(cover[:-1]):
            acc = node_hash(found[key], acc)
        hashes.append(acc)
    return hashes


def root(reader: NodeReader, size: int) -> bytes:
    """The RFC 9162 root of the first ``size`` leaves."""
    if size < 0:
        raise ValueError("size must be >= 0")
    if size == 0:
        return EMPTY_ROOT
    return _fold(reader, [(0, size)])[0]


def inclusion_proof(reader: NodeReader, index: int, size: int) -> list[bytes]:
    """RFC 9162 §2.1.3.1 inclusion proof of leaf ``index`` in the tree of ``size`` leaves."""
    if not 0 <= index < size:
        raise ValueError(f"index {index} is not in a tree of size {size}")
    return _fold(reader, inclusion_ranges(index, size))


def consistency_proof(reader: NodeReader, old_size: int, new_size: int) -> list[bytes]:
    """RFC 9162 §2.1.4.1 consistency proof between tree sizes ``old_size`` and ``new_size``."""
    if not 0 < old_size <= new_size:
        raise ValueError(f"no consistency proof from {old_size} to {new_size}")
    if old_size == new_size:
        return []
    return _fold(reader, consistency_ranges(old_size, new_size))


def frontier(size: int) -> list[Node]:
    """The perfect subtrees whose hashes are needed to append after ``size`` leaves."""
    return perfect_cover(0, size)


class TreeBuilder:
    """Appends leaves to a tree of known size, yielding the perfect nodes to store.

    Built from the tree size and the hashes of its :func:`frontier` nodes, so an
    append reads O(log n) nodes and writes on average two.
    """

    def __init__(self, size: int, frontier_hashes: Mapping[Node, bytes]) -> None:
        """Start from a tree of ``size`` leaves; ``frontier_hashes`` covers ``frontier(size)``."""
        self.size = size
        self._stack: list[tuple[Node, bytes]] = []
        for key in frontier(size):
            if key not in frontier_hashes:
                raise StorageError(f"frontier node {key} missing from storage")
            self._stack.append((key, frontier_hashes[key]))

    def append(self, leaf: bytes) -> list[tuple[Node, bytes]]:
        """Add one leaf hash; return every perfect node it completes (the leaf included)."""
        return self.extend((leaf,))

    def extend(self, leaves: Iterable[bytes]) -> list[tuple[Node, bytes]]:
        """Add leaf hashes in order; return the perfect nodes they complete, in order.

        The order is the storage order: by the last leaf covered, then by level.
        """
        created: list[tuple[Node, bytes]] = []
        add, stack, sha256 = created.append, self._stack, hashlib.sha256
        size = self.size
        for leaf in leaves:
            value, level, index = leaf, 0, size
            add(((0, index), value))
            while index & 1:  # a right child completes its parent (RFC 9162 §2.1.1)
                value = sha256(b"\x01" + stack.pop()[1] + value).digest()
                level, index = level + 1, index >> 1
                add(((level, index), value))
            stack.append(((level, index), value))
            size += 1
        self.size = size
        return created

    def root(self) -> bytes:
        """The RFC 9162 root of the leaves appended so far."""
        if not self._stack:
            return EMPTY_ROOT
        acc = self._stack[-1][1]
        for _, value in reversed(self._stack[:-1]):
            acc = node_hash(value, acc)
        return acc
