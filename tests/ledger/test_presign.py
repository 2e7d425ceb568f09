"""Checkpoints prepared without the append lock (``ledger.store.presign``), stored by CAS."""

from __future__ import annotations

import pytest

from ledger import (
    ConflictError,
    MemoryStorage,
    StoredCheckpoint,
    VerificationError,
    open_checkpoint,
    prepare_checkpoint,
)
from tests.ledger.helpers import ORIGIN, SIGNER, VERIFIER, build_ledger, draft


def _prepared(storage: MemoryStorage, size: int) -> StoredCheckpoint:
    prepared = prepare_checkpoint(storage, size, SIGNER, ORIGIN)
    assert prepared is not None
    return prepared


def test_nothing_to_sign_for_an_empty_or_already_covered_tree() -> None:
    storage, _ = build_ledger(0)
    assert prepare_checkpoint(storage, 0, SIGNER, ORIGIN) is None
    storage, _ = build_ledger(3, [3])
    assert prepare_checkpoint(storage, 3, SIGNER, ORIGIN) is None
    assert prepare_checkpoint(storage, 2, SIGNER, ORIGIN) is None


def test_the_prepared_checkpoint_signs_the_root_of_that_size() -> None:
    storage, ledger = build_ledger(6, [4])
    prepared = _prepared(storage, 6)
    signed = open_checkpoint(prepared.note, VERIFIER)
    assert (signed.size, signed.root) == (6, ledger.root(6)) == (prepared.size, prepared.root)
    storage.add_checkpoint(prepared)
    assert storage.latest_checkpoint() == prepared


def test_a_prepared_checkpoint_overtaken_by_a_larger_one_is_never_stored() -> None:
    storage, _ = build_ledger(5, [2])
    late = _prepared(storage, 4)
    storage.add_checkpoint(_prepared(storage, 5))  # another process was faster
    with pytest.raises(ConflictError):
        storage.add_checkpoint(late)
    assert [c.size for c in storage.checkpoints()] == [2, 5]


def test_it_never_signs_past_an_inconsistent_latest_checkpoint() -> None:
    storage, ledger = build_ledger(4, [4])
    latest = storage.checkpoint_list[-1]
    storage.checkpoint_list[-1] = StoredCheckpoint(latest.size, bytes(32), latest.note)
    ledger.append(draft(4))
    with pytest.raises(VerificationError):
        prepare_checkpoint(storage, 5, SIGNER, ORIGIN)
