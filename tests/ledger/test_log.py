"""The Ledger over MemoryStorage: appends, checkpoint cadence, trust rule for proofs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger import (
    GENESIS_PREV,
    ConflictError,
    ConsistencyProofError,
    InclusionProofError,
    Ledger,
    MemoryStorage,
    ProofError,
    StoredCheckpoint,
    VerificationError,
    merkle,
    open_checkpoint,
    parse_entry,
    verify_consistency,
    verify_inclusion,
)
from tests.ledger import reference
from tests.ledger.helpers import ORIGIN, SIGNER, VERIFIER, build_ledger, draft


def test_first_entry_has_index_zero_and_links_to_zeros() -> None:
    ledger = Ledger(MemoryStorage())
    appended = ledger.append(draft(0))
    entry = parse_entry(appended.raw)
    assert (appended.index, entry.index, entry.prev) == (0, 0, GENESIS_PREV)
    assert appended.leaf_hash == merkle.leaf_hash(appended.raw)


@given(batches=st.lists(st.integers(0, 9), min_size=1, max_size=6))
def test_append_and_append_many_give_contiguous_indices_and_prev_links(
        batches: list[int]) -> None:
    storage = MemoryStorage()
    ledger = Ledger(storage)
    n = 0
    for count in batches:
        if count == 1:
            got = [ledger.append(draft(n))]
        else:
            got = ledger.append_many(draft(n + i) for i in range(count))
        assert [a.index for a in got] == list(range(n, n + count))
        n += count
    leaves = [merkle.leaf_hash(raw) for raw in storage.entry_list]
    for i, raw in enumerate(storage.entry_list):
        entry = parse_entry(raw)
        assert entry.index == i
        assert entry.prev == (leaves[i - 1] if i else GENESIS_PREV)
    assert ledger.root(n) == reference.mth(leaves)


def test_append_many_of_nothing_writes_nothing() -> None:
    storage = MemoryStorage()
    assert Ledger(storage).append_many([]) == []
    assert storage.size() == 0


def test_a_rolled_back_transaction_leaves_no_entry() -> None:
    storage, ledger = build_ledger(3)
    storage.begin()
    ledger.append(draft(3))
    storage.rollback()
    assert storage.size() == 3
    assert ledger.append(draft(3)).index == 3


def test_clock_is_injected() -> None:
    moment = datetime(2030, 1, 1, tzinfo=UTC)
    assert Ledger(MemoryStorage(), clock=lambda: moment).now() == moment


def test_checkpoint_is_signed_only_when_the_tree_grew() -> None:
    storage, ledger = build_ledger(0)
    assert ledger.checkpoint(SIGNER, ORIGIN) is None  # empty tree: nothing to sign
    ledger.append_many([draft(0), draft(1)])
    first = ledger.checkpoint(SIGNER, ORIGIN)
    assert first is not None
    assert first.size == 2
    assert ledger.checkpoint(SIGNER, ORIGIN) is None  # no growth, no new checkpoint
    ledger.append(draft(2))
    second = ledger.checkpoint(SIGNER, ORIGIN)
    assert second is not None
    assert second.size == 3
    assert [c.size for c in storage.checkpoints()] == [2, 3]
    signed = open_checkpoint(second.note, VERIFIER)
    assert (signed.size, signed.root) == (3, ledger.root(3))


def test_checkpoint_never_extends_an_inconsistent_latest_one() -> None:
    storage, ledger = build_ledger(4, [4])
    latest = storage.checkpoint_list[-1]
    storage.checkpoint_list[-1] = StoredCheckpoint(latest.size, bytes(32), latest.note)
    ledger.append(draft(4))
    with pytest.raises(VerificationError):
        ledger.checkpoint(SIGNER, ORIGIN)


def test_a_second_writer_at_the_same_size_loses_the_compare_and_swap() -> None:
    storage, _ = build_ledger(5, [5])
    with pytest.raises(ConflictError):
        storage.add_checkpoint(storage.checkpoint_list[-1])


@given(size=st.integers(1, 40), data=st.data())
def test_inclusion_proofs_verify_against_the_signed_checkpoint(
        size: int, data: st.DataObject) -> None:
    storage, ledger = build_ledger(size, [size])
    index = data.draw(st.integers(0, size - 1))
    signed = open_checkpoint(storage.checkpoint_list[-1].note, VERIFIER)
    proof = ledger.inclusion_proof(index, size)
    verify_inclusion(merkle.leaf_hash(storage.entry_list[index]), index, size, proof,
                     root=signed.root)


def test_proofs_are_served_only_for_signed_sizes() -> None:
    _, ledger = build_ledger(10, [4, 7])
    ledger.inclusion_proof(3, 4)
    ledger.inclusion_proof(6, 7)
    with pytest.raises(InclusionProofError):
        ledger.inclusion_proof(3, 5)  # no checkpoint has size 5
    with pytest.raises(InclusionProofError):
        ledger.inclusion_proof(3, 10)  # appended, not yet checkpointed
    with pytest.raises(InclusionProofError):
        ledger.inclusion_proof(4, 4)
    verify_consistency(4, 7, ledger.root(4), ledger.root(7), proof=ledger.consistency_proof(4, 7))
    assert ledger.consistency_proof(7, 7) == []
    with pytest.raises(ConsistencyProofError):
        ledger.consistency_proof(4, 10)
    with pytest.raises(ConsistencyProofError):
        ledger.consistency_proof(0, 4)  # from 0 is meaningless
    with pytest.raises(ConsistencyProofError):
        ledger.consistency_proof(7, 4)


def test_the_trust_rule_looks_checkpoints_up_by_size_not_by_scanning() -> None:
    storage, ledger = build_ledger(40, checkpoints=tuple(range(1, 41)))

    def no_scan() -> None:
        raise AssertionError("proofs must not list every checkpoint")

    storage.checkpoints = no_scan  # type: ignore[method-assign,assignment]
    assert ledger.signed_checkpoint(17) == storage.checkpoint_list[16]
    assert len(ledger.consistency_proof(17, 33)) > 0
    assert len(ledger.inclusion_proof(5, 17)) > 0


def test_root_of_a_size_beyond_the_ledger_is_refused() -> None:
    _, ledger = build_ledger(3)
    assert ledger.root(0) == merkle.EMPTY_ROOT
    with pytest.raises(ProofError):
        ledger.root(4)
