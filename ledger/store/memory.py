"""An in-memory :class:`~ledger.store.storage.LedgerStorage`, for tests and offline tools.

It behaves like the SQL adapter seen from one transaction: :meth:`begin`
snapshots the state, :meth:`rollback` restores it, :meth:`commit` drops the
snapshot. Calls outside ``begin()`` act immediately (autocommit). The fields
are plain lists and dicts so that tests can tamper with them directly:

- ``entry_list``: entry bytes, position = index;
- ``node_hashes``: ``{(level, index): hash}`` of every perfect subtree;
- ``checkpoint_list``: stored checkpoints by ascending size, numbered 1, 2, ...;
- ``checkpoint_seq``: the latest checkpoint's number, as the head keeps it.

The head's size and last leaf hash are derived from the entries and nodes:
there is no separate head to corrupt here (``ledger.sql.store`` has one).
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from operator import itemgetter

from ledger.errors import ConflictError, StorageError
from ledger.format.merkle import Node
from ledger.store.storage import Head, StoredCheckpoint
from ledger.store.treecache import TreeCache


def _size(checkpoint: StoredCheckpoint) -> int:
    return checkpoint.size


_State = tuple[list[bytes], dict[Node, bytes], list[StoredCheckpoint], int]


class MemoryStorage:
    """Ledger storage held in Python lists and dicts."""

    def __init__(self) -> None:
        """An empty ledger."""
        self.entry_list: list[bytes] = []
        self.node_hashes: dict[Node, bytes] = {}
        self.checkpoint_list: list[StoredCheckpoint] = []
        self.checkpoint_seq = 0
        self._snapshot: _State | None = None

    # -- transactions (what a database session would give) --
    def begin(self) -> None:
        """Start a transaction: later changes can be rolled back."""
        if self._snapshot is not None:
            raise StorageError("a transaction is already open")
        self._snapshot = (list(self.entry_list), dict(self.node_hashes),
                          list(self.checkpoint_list), self.checkpoint_seq)

    def commit(self) -> None:
        """Keep the changes made since :meth:`begin`."""
        self._snapshot = None

    def rollback(self) -> None:
        """Undo every change made since :meth:`begin`."""
        if self._snapshot is None:
            raise StorageError("no transaction is open")
        entries, nodes, checkpoints, seq = self._snapshot
        self.entry_list, self.node_hashes, self.checkpoint_list = entries, nodes, checkpoints
        self.checkpoint_seq = seq
        self._snapshot = None

    # -- LedgerReader --
    def size(self) -> int:
        """Number of entries stored."""
        return len(self.entry_list)

    def entries(self, start: int, stop: int) -> Iterator[bytes]:
        """Entry bytes for positions ``start <= i < stop``."""
        return iter(self.entry_list[max(start, 0):max(stop, 0)])

    def nodes(self, keys: Sequence[Node]) -> Mapping[Node, bytes]:
        """The stored hashes of ``keys`` (absent keys are left out)."""
        return {key: self.node_hashes[key] for key in keys if key in self.node_hashes}

    def iter_nodes(self) -> Iterator[tuple[Node, bytes]]:
        """Every stored node, ordered by the last leaf it covers, then by level.

        Walks the leaves in order instead of sorting, so it needs no memory
        beyond the dict itself: the nodes whose last leaf is ``j`` are the
        levels ``0..t`` where ``2**t`` is the largest power of two dividing ``j + 1``.
        """
        nodes = self.node_hashes
        get = nodes.get
        last = max((((index + 1) << level) - 1 for level, index in nodes), default=-1)
        for j in range(last + 1):
            key = (0, j)
            value = get(key)
            if value is not None:
                yield key, value
            level, index = 0, j
            while index & 1:
                level, index = level + 1, index >> 1
                key = (level, index)
                value = get(key)
                if value is not None:
                    yield key, value

    def head(self) -> Head:
        """The head, derived from the entries and nodes (see the module docstring)."""
        last = self.node_hashes.get((0, len(self.entry_list) - 1)) if self.entry_list else None
        return Head(size=len(self.entry_list), last_leaf_hash=last, entry_leaf_hash=last,
                    checkpoint_seq=self.checkpoint_seq)

    def stored_leaf_hashes(self, start: int, stop: int) -> Iterator[tuple[bytes, bytes]]:
        """Entry bytes with their stored leaf hash (the leaf node: memory keeps no copy)."""
        for index, raw in enumerate(self.entries(start, stop), max(start, 0)):
            yield raw, self.node_hashes.get((0, index), b"")

    def iter_node_hashes(self) -> Iterator[bytes]:
        """Every stored node's hash, in :meth:`iter_nodes` order."""
        return map(itemgetter(1), self.iter_nodes())

    def node_hashes_ending_between(self, first: int, last: int) -> Iterator[bytes]:
        """The hashes of the stored nodes whose last leaf is in ``first..last``, in order."""
        found = sorted((((index + 1) << level) - 1, level, value)
                       for (level, index), value in self.node_hashes.items()
                       if first <= ((index + 1) << level) - 1 <= last)
        return (value for _, _, value in found)

    def checkpoints(self) -> Iterator[StoredCheckpoint]:
        """Every stored checkpoint, by ascending size."""
        return iter(list(self.checkpoint_list))

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        """The stored checkpoint with the largest size, if any."""
        return self.checkpoint_list[-1] if self.checkpoint_list else None

    def checkpoint_at(self, size: int) -> StoredCheckpoint | None:
        """The stored checkpoint of exactly ``size`` leaves, if any.

        A binary search of the list (kept by ascending size), not a dict
        beside it: tests edit ``checkpoint_list`` in place, and an index
        would go stale behind their back.
        """
        found = self.checkpoint_list
        i = bisect.bisect_left(found, size, key=_size)
        return found[i] if i < len(found) and found[i].size == size else None

    # -- LedgerStorage --
    def lock_head(self) -> Head:
        """Return the head (one writer at a time is the caller's business in memory)."""
        return self.head()

    def append(self, first_index: int, entries: Sequence[bytes],
               nodes: Sequence[tuple[Node, bytes]]) -> None:
        """Store ``entries`` from ``first_index`` on, and the nodes they complete."""
        if first_index != len(self.entry_list):
            raise ConflictError(
                f"append at {first_index} but the ledger has {len(self.entry_list)}")
        self.entry_list.extend(entries)
        self.node_hashes.update(nodes)

    def add_checkpoint(self, checkpoint: StoredCheckpoint) -> None:
        """Store a checkpoint larger than the latest one, else raise :class:`ConflictError`."""
        latest = self.latest_checkpoint()
        if latest is not None and checkpoint.size <= latest.size:
            raise ConflictError(f"checkpoint {checkpoint.size} is not above {latest.size}")
        self.checkpoint_seq += 1
        self.checkpoint_list.append(dataclasses.replace(checkpoint, seq=self.checkpoint_seq))

    def update_checkpoint_note(self, size: int, note: str) -> None:
        """Replace the note of the checkpoint at ``size``."""
        for i, stored in enumerate(self.checkpoint_list):
            if stored.size == size:
                self.checkpoint_list[i] = dataclasses.replace(stored, note=note)
                return
        raise StorageError(f"no checkpoint at size {size}")

    def committed_tree(self, size: int) -> TreeCache | None:
        """``None``: nodes are in memory already, and tests edit them in place."""
        return None
