"""Cross-check against the naive RFC 9162 reference (tests/ledger/reference.py).

Roots and proofs come from ``ledger.format.merkle`` over storage filled through the
real ``Ledger``/``TreeBuilder`` and are verified by ``ledger.format.proof``; the
reference recomputes everything from the leaf hashes alone.
"""

from __future__ import annotations

import hashlib
from functools import cache

from hypothesis import given
from hypothesis import strategies as st

from ledger import MemoryStorage, merkle, verify_consistency, verify_inclusion
from ledger.format.proof import root_from_inclusion
from tests.ledger import reference
from tests.ledger.helpers import build_ledger

SMALL = 64
BIG = 100_000


@cache
def small_ledger() -> tuple[MemoryStorage, list[bytes]]:
    """A real 64-entry ledger and its leaf hashes."""
    storage, _ = build_ledger(SMALL)
    return storage, [reference.leaf(raw) for raw in storage.entry_list]


@cache
def big_tree() -> tuple[MemoryStorage, list[bytes]]:
    """A 10^5-leaf tree built once per run with TreeBuilder (leaves need not be entries)."""
    storage = MemoryStorage()
    builder = merkle.TreeBuilder(0, {})
    leaves = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(BIG)]
    for leaf in leaves:
        storage.node_hashes.update(builder.append(leaf))
    return storage, leaves


def test_roots_match_the_reference_for_every_size_up_to_64() -> None:
    storage, leaves = small_ledger()
    for size in range(SMALL + 1):
        assert merkle.root(storage, size) == reference.mth(leaves[:size])


def test_inclusion_proofs_match_the_reference_for_every_index_and_size_up_to_64() -> None:
    storage, leaves = small_ledger()
    for size in range(1, SMALL + 1):
        root = reference.mth(leaves[:size])
        for index in range(size):
            proof = merkle.inclusion_proof(storage, index, size)
            assert proof == reference.path(index, leaves[:size])
            verify_inclusion(leaves[index], index, size, proof, root=root)


def test_consistency_proofs_match_the_reference_for_every_pair_of_sizes_up_to_64() -> None:
    storage, leaves = small_ledger()
    roots = [reference.mth(leaves[:size]) for size in range(SMALL + 1)]
    for new in range(1, SMALL + 1):
        for old in range(1, new + 1):
            proof = merkle.consistency_proof(storage, old, new)
            assert proof == reference.proof(old, leaves[:new])
            verify_consistency(old, new, roots[old], roots[new], proof=proof)


def test_tree_builder_root_matches_the_reference_at_every_size() -> None:
    _, leaves = small_ledger()
    builder = merkle.TreeBuilder(0, {})
    for size, leaf in enumerate(leaves, start=1):
        builder.append(leaf)
        assert builder.root() == reference.mth(leaves[:size])


def _big_root(size: int) -> bytes:
    storage, _ = big_tree()
    return merkle.root(storage, size)


@given(data=st.data())
def test_inclusion_in_large_trees_verifies_against_the_stored_root(data: st.DataObject) -> None:
    storage, leaves = big_tree()
    size = data.draw(st.integers(1, BIG), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    proof = merkle.inclusion_proof(storage, index, size)
    verify_inclusion(leaves[index], index, size, proof, root=_big_root(size))
    assert root_from_inclusion(leaves[index], index, size, proof) == _big_root(size)


@given(data=st.data())
def test_consistency_in_large_trees_verifies_between_stored_roots(data: st.DataObject) -> None:
    storage, _ = big_tree()
    new = data.draw(st.integers(1, BIG), label="new size")
    old = data.draw(st.integers(1, new), label="old size")
    proof = merkle.consistency_proof(storage, old, new)
    verify_consistency(old, new, _big_root(old), _big_root(new), proof=proof)


@given(size=st.integers(1, 2048), data=st.data())
def test_reference_agrees_on_random_mid_sized_trees(size: int, data: st.DataObject) -> None:
    # The reference is quadratic-ish, so it is exercised up to 2048 leaves here,
    # on the prefix of the big tree (the same stored nodes).
    storage, leaves = big_tree()
    index = data.draw(st.integers(0, size - 1), label="index")
    old = data.draw(st.integers(1, size), label="old size")
    assert merkle.root(storage, size) == reference.mth(leaves[:size])
    assert merkle.inclusion_proof(storage, index, size) == reference.path(index, leaves[:size])
    assert merkle.consistency_proof(storage, old, size) == reference.proof(old, leaves[:size])
