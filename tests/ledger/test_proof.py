"""Proof verification fails closed: preconditions before hashing, typed errors after."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger import (
    ConsistencyProofError,
    InclusionProofError,
    MemoryStorage,
    RootMismatchError,
    VerificationError,
    merkle,
    verify_consistency,
    verify_inclusion,
)
from tests.ledger import reference

SIZE = 50


def _tree() -> tuple[MemoryStorage, list[bytes]]:
    storage = MemoryStorage()
    builder = merkle.TreeBuilder(0, {})
    leaves = [reference.leaf(bytes([i])) for i in range(SIZE)]
    for leaf in leaves:
        storage.node_hashes.update(builder.append(leaf))
    return storage, leaves


STORAGE, LEAVES = _tree()
ROOTS = [merkle.root(STORAGE, size) for size in range(SIZE + 1)]


def flip(data: bytes, bit: int) -> bytes:
    """``data`` with one bit inverted."""
    out = bytearray(data)
    out[bit // 8 % len(out)] ^= 1 << (bit % 8)
    return bytes(out)


sizes = st.integers(1, SIZE)


@given(size=sizes, data=st.data())
def test_any_bit_flip_in_an_inclusion_proof_is_detected(size: int, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, size - 1))
    proof = merkle.inclusion_proof(STORAGE, index, size)
    target = data.draw(st.integers(-2, len(proof) - 1), label="element (-2 leaf, -1 root)")
    bit = data.draw(st.integers(0, 255), label="bit")
    leaf, root = LEAVES[index], ROOTS[size]
    if target == -2:
        leaf = flip(leaf, bit)
    elif target == -1:
        root = flip(root, bit)
    else:
        proof[target] = flip(proof[target], bit)
    with pytest.raises(RootMismatchError):
        verify_inclusion(leaf, index, size, proof, root=root)


@given(size=st.integers(2, SIZE), data=st.data())
def test_inclusion_proof_for_the_wrong_index_fails(size: int, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, size - 1))
    other = data.draw(st.integers(0, size - 1).filter(lambda i: i != index))
    proof = merkle.inclusion_proof(STORAGE, index, size)
    with pytest.raises(VerificationError):
        verify_inclusion(LEAVES[index], other, size, proof, root=ROOTS[size])


@given(size=sizes, data=st.data())
def test_inclusion_proof_for_the_wrong_size_fails(size: int, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, size - 1))
    other = data.draw(st.integers(index + 1, SIZE).filter(lambda n: n != size))
    proof = merkle.inclusion_proof(STORAGE, index, size)
    with pytest.raises(VerificationError):
        verify_inclusion(LEAVES[index], index, other, proof, root=ROOTS[other])


def test_an_inclusion_proof_alone_does_not_fix_the_tree_size() -> None:
    # Why the trust rule exists: this proof for size 17 also "verifies" for a
    # claimed size of 18 against the size-17 root, so only a signed
    # checkpoint may say which size and root to check against.
    proof = merkle.inclusion_proof(STORAGE, 0, 17)
    verify_inclusion(LEAVES[0], 0, 17, proof, root=ROOTS[17])
    verify_inclusion(LEAVES[0], 0, 18, proof, root=ROOTS[17])


def test_inclusion_proof_with_an_extra_or_missing_element_is_malformed() -> None:
    proof = merkle.inclusion_proof(STORAGE, 5, 37)
    verify_inclusion(LEAVES[5], 5, 37, proof, root=ROOTS[37])
    for bad in (proof + [proof[0]], proof[:-1], [proof[0], *proof]):
        with pytest.raises(InclusionProofError):
            verify_inclusion(LEAVES[5], 5, 37, bad, root=ROOTS[37])


def test_inclusion_preconditions_are_checked_before_hashing() -> None:
    proof = merkle.inclusion_proof(STORAGE, 5, 37)
    with pytest.raises(InclusionProofError):
        verify_inclusion(LEAVES[5], 37, 37, proof, root=ROOTS[37])
    with pytest.raises(InclusionProofError):
        verify_inclusion(LEAVES[5], -1, 37, proof, root=ROOTS[37])
    with pytest.raises(InclusionProofError):
        verify_inclusion(LEAVES[5][:31], 5, 37, proof, root=ROOTS[37])
    with pytest.raises(InclusionProofError):
        verify_inclusion(LEAVES[5], 5, 37, [proof[0] + b"\x00", *proof[1:]], root=ROOTS[37])
    with pytest.raises(InclusionProofError):
        verify_inclusion(LEAVES[0], 0, 0, [], root=merkle.EMPTY_ROOT)


@given(new=st.integers(2, SIZE), data=st.data())
def test_any_bit_flip_in_a_consistency_proof_is_detected(new: int, data: st.DataObject) -> None:
    old = data.draw(st.integers(1, new - 1))
    proof = merkle.consistency_proof(STORAGE, old, new)
    target = data.draw(st.integers(-2, len(proof) - 1), label="element (-2 old, -1 new root)")
    bit = data.draw(st.integers(0, 255), label="bit")
    old_root, new_root = ROOTS[old], ROOTS[new]
    if target == -2:
        old_root = flip(old_root, bit)
    elif target == -1:
        new_root = flip(new_root, bit)
    else:
        proof[target] = flip(proof[target], bit)
    with pytest.raises(RootMismatchError):
        verify_consistency(old, new, old_root, new_root, proof=proof)


@given(new=st.integers(2, SIZE), data=st.data())
def test_consistency_proof_for_other_sizes_fails(new: int, data: st.DataObject) -> None:
    old = data.draw(st.integers(1, new - 1))
    proof = merkle.consistency_proof(STORAGE, old, new)
    other_old = data.draw(st.integers(1, new - 1).filter(lambda m: m != old))
    with pytest.raises(VerificationError):
        verify_consistency(other_old, new, ROOTS[other_old], ROOTS[new], proof=proof)


def test_consistency_proof_with_an_extra_or_missing_element_is_malformed() -> None:
    proof = merkle.consistency_proof(STORAGE, 13, 42)
    verify_consistency(13, 42, ROOTS[13], ROOTS[42], proof=proof)
    for bad in (proof + [proof[0]], proof[:-1], []):
        with pytest.raises(ConsistencyProofError):
            verify_consistency(13, 42, ROOTS[13], ROOTS[42], proof=bad)


def test_consistency_from_size_zero_is_refused_as_meaningless() -> None:
    for new in (0, 1, 10):
        with pytest.raises(ConsistencyProofError):
            verify_consistency(0, new, merkle.EMPTY_ROOT, ROOTS[new], proof=[])


def test_consistency_backwards_is_refused() -> None:
    with pytest.raises(ConsistencyProofError):
        verify_consistency(10, 9, ROOTS[10], ROOTS[9], proof=[])


def test_equal_sizes_need_an_empty_proof_and_equal_roots() -> None:
    verify_consistency(17, 17, ROOTS[17], ROOTS[17], proof=[])
    with pytest.raises(ConsistencyProofError):
        verify_consistency(17, 17, ROOTS[17], ROOTS[17], proof=[ROOTS[1]])
    with pytest.raises(RootMismatchError):
        verify_consistency(17, 17, ROOTS[17], ROOTS[16], proof=[])


def test_root_mismatch_names_both_roots() -> None:
    proof = merkle.inclusion_proof(STORAGE, 3, 9)
    with pytest.raises(RootMismatchError) as caught:
        verify_inclusion(LEAVES[3], 3, 9, proof, root=ROOTS[8])
    assert caught.value.expected == ROOTS[8]
    assert caught.value.computed == ROOTS[9]
