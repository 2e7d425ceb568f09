"""The committed-tree cache: the same proofs as the naive reference, and nothing uncommitted.

Pure tests feed :class:`TreeCache` the node rows a storage would give and
compare every root and proof with ``tests/ledger/reference.py``, with the
whole tree in memory and with a budget that leaves the low levels to be
fetched. Database tests (SQLite and PostgreSQL) check that proofs through
``Ledger`` stop reading storage once the cache holds the tree, and that a
transaction that rolls back leaves nothing behind.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from functools import cache

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from app.ledger.engine import make_engine
from app.ledger.unit_of_work import make_session_factory, transaction, tree_cache_of
from app.models.ledger import LEDGER_TABLES
from ledger import (
    Ledger,
    Node,
    StorageError,
    StoredCheckpoint,
    TreeCache,
    merkle,
    verify_consistency,
    verify_inclusion,
)
from ledger.sql import SqlStorage
from ledger.store.treecache import UPPER_LEVEL, UPPER_PATHS
from tests.ledger import reference
from tests.ledger.helpers import ORIGIN, SIGNER, draft

SMALL = 64
BIG = 5_000


class Nodes:
    """Stored nodes by key, counting the fetches (what the cache did not hold)."""

    def __init__(self, nodes: Sequence[tuple[Node, bytes]]) -> None:
        self.rows = list(nodes)
        self.by_key = dict(self.rows)
        self.fetched = 0

    def fetch(self, keys: Sequence[Node]) -> Mapping[Node, bytes]:
        self.fetched += len(keys)
        return {key: self.by_key[key] for key in keys if key in self.by_key}

    def range(self, start: int, stop: int, low: int) -> list[tuple[int, int, bytes]]:
        """What ``SqlStorage.committed_tree`` reads: nodes ending in [start, stop), level >= low."""
        return [(level, index, value) for (level, index), value in self.rows
                if start <= ((index + 1) << level) - 1 < stop and level >= low]


@cache
def tree(size: int) -> tuple[list[bytes], Nodes]:
    leaves = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(size)]
    return leaves, Nodes(merkle.TreeBuilder(0, {}).extend(leaves))


def grown(size: int, steps: Sequence[int], max_bytes: int = 1 << 30,
          upper_level: int = UPPER_LEVEL) -> TreeCache:
    """A cache grown to each of ``steps`` (checkpoint sizes) in turn, from ``tree(size)``."""
    leaves, nodes = tree(size)
    tc = TreeCache(max_bytes, upper_level)
    for step in steps:
        tc.remember(StoredCheckpoint(step, reference.mth(leaves[:step]), ""))
        rows = nodes.range(tc.size, step, tc.level_for(step))
        assert tc.extend(rows, step, nodes.fetch)
    return tc


@pytest.mark.parametrize("upper_level", [UPPER_LEVEL, 3, 1], ids=lambda u: f"upper{u}")
@pytest.mark.parametrize("max_bytes", [1 << 30, 400, 64], ids=["whole", "budget", "tiny"])
def test_every_proof_up_to_64_leaves_matches_the_reference(max_bytes: int,
                                                           upper_level: int) -> None:
    """Twice over: the second round's upper paths are the ones the first one kept."""
    leaves, nodes = tree(SMALL)
    tc = grown(SMALL, [5, 33, SMALL], max_bytes, upper_level)
    for size in [*range(1, SMALL + 1), *range(1, SMALL + 1)]:
        assert tc.root(size, nodes.fetch) == reference.mth(leaves[:size])
        for index in range(size):
            assert tc.inclusion_proof(index, size, nodes.fetch) == \
                reference.path(index, leaves[:size])
        for old in range(1, size):
            assert tc.consistency_proof(old, size, nodes.fetch) == \
                reference.proof(old, leaves[:size])


@given(data=st.data(), max_bytes=st.sampled_from([1 << 30, 4096, 100]),
       upper_level=st.sampled_from([UPPER_LEVEL, 4, 2]))
def test_proofs_at_random_sizes_match_the_reference(data: st.DataObject, max_bytes: int,
                                                    upper_level: int) -> None:
    leaves, nodes = tree(BIG)
    steps = sorted(data.draw(st.sets(st.integers(1, BIG), min_size=1, max_size=4)))
    tc = grown(BIG, steps, max_bytes, upper_level)
    size = data.draw(st.sampled_from(steps))
    for index in data.draw(st.lists(st.integers(0, size - 1), min_size=1, max_size=5)):
        assert tc.inclusion_proof(index, size, nodes.fetch) == \
            reference.path(index, leaves[:size])
    if size > 1:
        old = data.draw(st.integers(1, size - 1))
        proof = tc.consistency_proof(old, size, nodes.fetch)
        verify_consistency(old, size, reference.mth(leaves[:old]),
                           reference.mth(leaves[:size]), proof=proof)
        assert proof == merkle.consistency_proof(_Reader(nodes), old, size)


def test_kept_upper_paths_stay_within_their_bound() -> None:
    leaves, nodes = tree(BIG)
    tc = grown(BIG, [BIG], upper_level=1)  # ~2,500 nodes of level 1: keeps paths for most
    for size in range(BIG - 60, BIG + 1):
        tc.remember(StoredCheckpoint(size, reference.mth(leaves[:size]), ""))
        for index in range(0, size, 2):
            tc.inclusion_proof(index, size, nodes.fetch)
        assert tc.inclusion_proof(size - 1, size, nodes.fetch) == \
            reference.path(size - 1, leaves[:size])
    kept = sum(map(len, tc._uppers.values()))
    assert 0 < kept <= UPPER_PATHS + BIG  # the bound is checked as a size's paths start
    assert len(tc._uppers) < 60


class _Reader:
    def __init__(self, nodes: Nodes) -> None:
        self._nodes = nodes

    def nodes(self, keys: Sequence[Node]) -> Mapping[Node, bytes]:
        return self._nodes.fetch(keys)


def test_a_whole_cache_answers_without_fetching() -> None:
    _, nodes = tree(BIG)
    tc = grown(BIG, [1000, BIG])
    before = nodes.fetched
    for index in range(0, BIG, 97):
        tc.inclusion_proof(index, BIG, nodes.fetch)
    tc.consistency_proof(1000, BIG, nodes.fetch)
    assert nodes.fetched == before


def test_a_level_dropped_under_a_reader_is_fetched_instead() -> None:
    """The moment inside a drop when a level is gone but ``min_level`` has not risen yet."""
    leaves, nodes = tree(BIG)
    tc = grown(BIG, [BIG])
    tc._levels[0] = bytearray()  # what _drop_below does first
    before = nodes.fetched
    for index in (0, 1234, BIG - 1):
        assert tc.inclusion_proof(index, BIG, nodes.fetch) == reference.path(index, leaves)
    assert nodes.fetched > before


def test_a_budget_drops_the_lowest_levels_and_fetches_them() -> None:
    _, nodes = tree(BIG)
    tc = grown(BIG, [BIG], max_bytes=BIG * 8)  # room for levels >= 3 only
    assert tc.min_level == 3
    tc.inclusion_proof(0, BIG, nodes.fetch)  # the right edge of BIG, computed once
    before = nodes.fetched
    tc.inclusion_proof(1234, BIG, nodes.fetch)
    assert nodes.fetched - before == 3  # the siblings at levels 0, 1 and 2


def _bad_rows(kind: str, rows: list[tuple[int, int, bytes]]) -> list[tuple[int, int, bytes]]:
    if kind == "missing":
        return rows[:5] + rows[6:]
    if kind == "repeated":
        return rows[:6] + rows[5:]
    if kind == "flipped":
        level, index, value = rows[7]
        return rows[:7] + [(level, index, bytes([value[0] ^ 1]) + value[1:])] + rows[8:]
    return rows[:-1]  # "truncated"


@pytest.mark.parametrize("kind", ["missing", "repeated", "flipped", "truncated"])
def test_rows_that_do_not_make_the_signed_tree_are_refused(kind: str) -> None:
    leaves, nodes = tree(SMALL)
    tc = grown(SMALL, [10])
    tc.remember(StoredCheckpoint(SMALL, reference.mth(leaves), ""))
    rows = _bad_rows(kind, nodes.range(10, SMALL, 0))
    assert not tc.extend(rows, SMALL, nodes.fetch)
    assert tc.size == 10
    assert tc.inclusion_proof(3, 10, nodes.fetch) == reference.path(3, leaves[:10])
    assert tc.extend(nodes.range(10, SMALL, 0), SMALL, nodes.fetch)  # still whole underneath


def test_a_wrong_signed_root_or_an_unknown_size_is_refused() -> None:
    _, nodes = tree(SMALL)
    tc = TreeCache()
    assert not tc.extend(nodes.range(0, SMALL, 0), SMALL, nodes.fetch)  # no checkpoint known
    tc.remember(StoredCheckpoint(SMALL, bytes(32), ""))
    assert not tc.extend(nodes.range(0, SMALL, 0), SMALL, nodes.fetch)
    assert not tc.covers(SMALL)


def test_a_node_missing_from_storage_is_a_storage_error() -> None:
    tc = grown(SMALL, [SMALL], max_bytes=64)
    with pytest.raises(StorageError):
        tc.inclusion_proof(0, SMALL, lambda keys: {})


# -- through SqlStorage, on SQLite and PostgreSQL --

class CountingStorage(SqlStorage):
    """SqlStorage that counts node and checkpoint reads."""

    reads = 0

    def nodes(self, keys: Sequence[Node]) -> Mapping[Node, bytes]:
        CountingStorage.reads += 1
        return super().nodes(keys)

    def checkpoint_at(self, size: int) -> StoredCheckpoint | None:
        CountingStorage.reads += 1
        return super().checkpoint_at(size)


def _append_and_sign(session: Session, count: int, first: int = 0) -> int:
    """Append drafts ``first, first + 1, ...`` and sign a checkpoint; its size."""
    ledger = Ledger(SqlStorage(session, LEDGER_TABLES, tree_cache_of(session)))
    ledger.append_many(draft(n) for n in range(first, first + count))
    stored = ledger.checkpoint(SIGNER, ORIGIN)
    assert stored is not None
    return stored.size


def test_proofs_come_from_memory_once_the_cache_holds_the_tree(db_url: str) -> None:
    engine = make_engine(db_url, poolclass=NullPool)
    factory = make_session_factory(engine, TreeCache())
    with transaction(factory) as session:
        first = _append_and_sign(session, 40)
    with transaction(factory) as session:
        size = _append_and_sign(session, 60)
    with factory() as session:
        storage = CountingStorage(session, LEDGER_TABLES, tree_cache_of(session))
        ledger = Ledger(storage)
        expected = [merkle.inclusion_proof(storage, i, size) for i in range(size)]
        ledger.inclusion_proof(0, size)
        ledger.consistency_proof(first, size)
        CountingStorage.reads = 0
        assert [ledger.inclusion_proof(i, size) for i in range(size)] == expected
        assert ledger.consistency_proof(first, size) == \
            merkle.consistency_proof(SqlStorage(session, LEDGER_TABLES), first, size)
        assert CountingStorage.reads == 0
    engine.dispose()


def test_a_rolled_back_checkpoint_leaves_nothing_in_the_cache(db_url: str) -> None:
    engine = make_engine(db_url, poolclass=NullPool)
    tc = TreeCache()
    factory = make_session_factory(engine, tc)
    with transaction(factory) as session:
        base = _append_and_sign(session, 8)
    session = factory()
    doomed = _append_and_sign(session, 8)
    Ledger(SqlStorage(session, LEDGER_TABLES, tc)).inclusion_proof(3, doomed)
    assert tc.signed_root(doomed) is None
    assert tc.size <= base
    session.rollback()
    session.close()
    with transaction(factory) as session:  # other entries at the same indices
        size = _append_and_sign(session, 8, first=1000)
    assert size == doomed
    with factory() as session:
        ledger = Ledger(SqlStorage(session, LEDGER_TABLES, tree_cache_of(session)))
        root = SqlStorage(session, LEDGER_TABLES).checkpoint_at(size)
        assert root is not None
        for index in range(size):
            raw = next(SqlStorage(session, LEDGER_TABLES).entries(index, index + 1))
            verify_inclusion(merkle.leaf_hash(raw), index, size,
                             ledger.inclusion_proof(index, size), root=root.root)
        assert tc.size == size
    engine.dispose()
