"""One aligned chunk of a ledger, checked on its own: a share of a chunked verification.

A chunk is the leaves ``start <= i < stop`` with ``start`` a multiple of
``2**bits`` and ``stop <= start + 2**bits``. Alignment is what lets chunks be
checked apart (RFC 9162 §2.1.1): every perfect subtree of level ``<= bits``
lies inside one chunk, and for ``start < c <= stop`` the subtrees covering
``[0, c)`` are those covering ``[0, start)`` (level ``>= bits``, built from
the chunk roots before it) followed by those covering ``[start, c)`` (inside
the chunk). So a chunk's summary carries what the whole-ledger checks need
from it (:mod:`ledger.verify.parallel` does those): the first entry's ``prev`` and
the last leaf hash (links between chunks), the covers at each checkpoint size
inside it, and the stored hashes that follow its own nodes in storage order
(those of level ``> bits`` ending at its last leaf, which only the chunk roots
give). Like the exact pass, it compares stored hashes in storage order, never
keys: equal hash sequences mean equal nodes (hashes are preimage resistant).

:func:`check_chunk` answers only "clean" (a summary) or "not clean" (``None``):
it never classifies a fault, the exact pass (:mod:`ledger.verify.walk`) does.
Hashing is done level by level with C-level maps; no Python code runs per entry.
"""

from __future__ import annotations

import hashlib
import itertools
from binascii import hexlify
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import lru_cache
from operator import add

from ledger.errors import EntryFormatError
from ledger.format.checker import EntryChecker
from ledger.store.storage import LedgerReader

__all__ = ["ChunkSummary", "ChunkTask", "ReaderOpener", "check_chunk", "check_chunks", "cover",
           "levels"]

ReaderOpener = Callable[[], AbstractContextManager[LedgerReader]]
"""Opens a reader of its own in a worker process (picklable, e.g. a database URL's opener)."""

_sha256 = hashlib.sha256
_digest = type(_sha256()).digest
_leaf_prefix = b"\x00".__add__  # RFC 9162 §2.1.1: leaf = SHA-256(0x00 || entry)
_node_prefix = b"\x01".__add__  # node = SHA-256(0x01 || left || right)


@dataclass(frozen=True)
class ChunkTask:
    """Check leaves ``start..stop-1`` (aligned to ``2**bits``) and give covers at ``sizes``."""

    start: int
    stop: int
    bits: int
    sizes: tuple[int, ...]  # checkpoint sizes with start < size <= stop


@dataclass(frozen=True)
class ChunkSummary:
    """What a clean chunk tells the whole-ledger checks."""

    start: int
    stop: int
    first_prev: bytes  # the first entry's prev, as the lowercase hex it must be
    last_leaf: bytes
    root: bytes | None  # of a full chunk: its perfect subtree of level bits
    covers: tuple[tuple[bytes, ...], ...]  # per task size: the subtrees of [start, size)
    upper: tuple[bytes, ...]  # the stored hashes after the chunk's own nodes, in order


def levels(leaves: list[bytes]) -> list[list[bytes]]:
    """Every perfect subtree over ``leaves`` (aligned), level by level: ``[leaves, pairs, ...]``."""
    out = [leaves]
    level = leaves
    while len(level) > 1:
        pairs = map(add, level[0::2], level[1::2])  # an odd last node waits for its sibling
        level = list(map(_digest, map(_sha256, map(_node_prefix, pairs))))
        out.append(level)
    return out


def cover(tree: Sequence[Sequence[bytes]], count: int) -> tuple[bytes, ...]:
    """The perfect subtrees covering the first ``count`` leaves of ``tree``, largest first."""
    found: list[bytes] = []
    done = 0
    for level in reversed(range(count.bit_length())):
        if count >> level & 1:
            found.append(tree[level][done >> level])
            done += 1 << level
    return tuple(found)


@lru_cache(maxsize=8)
def _storage_order(count: int) -> tuple[int, ...]:
    """For an aligned chunk of ``count`` leaves: where each of its nodes is in
    :func:`levels` flattened, in storage order (by last leaf, then level)."""
    offsets = [0]
    size = count
    while size > 1:
        offsets.append(offsets[-1] + size)
        size >>= 1
    positions: list[int] = []
    for leaf in range(count):
        level, done = 0, leaf + 1
        while level < len(offsets) and done % (1 << level) == 0:
            positions.append(offsets[level] + (done >> level) - 1)
            level += 1
    return tuple(positions)


def _fields(checker: EntryChecker, raws: list[bytes]) -> tuple[list[int], list[bytes]] | None:
    """Indices and prev texts of ``raws``; ``None`` if any entry is not canonical."""
    fields = checker.check_batch(raws)
    if fields is not None:
        return list(map(int, fields[0])), list(fields[1])
    try:  # an uncommon shape: the exact per-entry check (strict parser behind it)
        found = list(checker.scan(raws))
    except EntryFormatError:
        return None
    return [index for _, index, _ in found], [prev for _, _, prev in found]


def check_chunk(reader: LedgerReader, task: ChunkTask,
                checker: EntryChecker | None = None) -> ChunkSummary | None:
    """Check one chunk's entries and stored nodes; its summary if clean, else ``None``."""
    start, stop, bits = task.start, task.stop, task.bits
    rows = list(reader.stored_leaf_hashes(start, stop))
    raws = [raw for raw, _ in rows]
    fields = _fields(checker or EntryChecker(), raws) if len(raws) == stop - start > 0 else None
    if fields is None:
        return None
    indices, prevs = fields
    leaves = list(map(_digest, map(_sha256, map(_leaf_prefix, raws))))
    del raws
    if indices != list(range(start, stop)) or prevs[1:] != list(map(hexlify, leaves[:-1])) \
            or [leaf for _, leaf in rows] != leaves:  # the stored leaf_hash column too
        return None
    tree = levels(leaves)
    positions = _storage_order(stop - start)
    stored = list(reader.node_hashes_ending_between(start, stop - 1))
    known = len(positions)
    flat = list(itertools.chain.from_iterable(tree))
    if stored[:known] != list(map(flat.__getitem__, positions)):
        return None
    root = tree[bits][0] if stop - start == 1 << bits else None
    return ChunkSummary(start, stop, prevs[0], leaves[-1], root,
                        tuple(cover(tree, size - start) for size in task.sizes),
                        tuple(stored[known:]))


def check_chunks(opener: ReaderOpener, tasks: Sequence[ChunkTask]) -> list[ChunkSummary] | None:
    """Check ``tasks`` in order through a reader of this process's own (a worker's share).

    ``None`` at the first chunk that is not clean (the caller runs the exact pass).
    """
    with opener() as reader:
        return check_chunks_in(reader, tasks)


def check_chunks_in(reader: LedgerReader, tasks: Sequence[ChunkTask]) -> list[ChunkSummary] | None:
    """Check ``tasks`` in order through ``reader``; ``None`` at the first chunk not clean."""
    checker = EntryChecker()
    out: list[ChunkSummary] = []
    for task in tasks:
        summary = check_chunk(reader, task, checker)
        if summary is None:
            return None
        out.append(summary)
    return out
