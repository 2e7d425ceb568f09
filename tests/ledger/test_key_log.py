"""The key log: leaf encoding, the checkpoint extension line, the frontier, and the auditor.

A naive reference tree (``tests.ledger.reference``) cross-checks the key
tree; the auditor's verifier recomputes the key log and names a checkpoint
whose key root the entries do not give.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger import (
    Checkpoint,
    ConflictError,
    EntryDraft,
    EntryFormatError,
    Fault,
    KeyLeaf,
    KeyLogFrontier,
    KeyLogHead,
    Ledger,
    MemoryKeyLog,
    MemoryStorage,
    NoteFormatError,
    VerificationError,
    decode_key_leaf,
    extension_line,
    key_leaf_of,
    key_leaves,
    key_log_head,
    open_checkpoint,
    prepare_keyed_checkpoint,
    sign_checkpoint,
    verify_ledger,
)
from tests.ledger import reference
from tests.ledger.helpers import ORIGIN, SIGNER, T0, VERIFIER, draft

# docs/protocol.md §11.7, the vector: liaison "mx-fgr-1", ledger index 5,
# ledger leaf hash 32 bytes of 0xab.
VECTOR_LEAF = KeyLeaf("mx-fgr-1", 5, bytes([0xAB]) * 32)
VECTOR_BYTES = "0000000000000005" + "ab" * 32 + "08" + b"mx-fgr-1".hex()
VECTOR_HASH = "9f9077a23f0aa99a4e62f823163105d5ccac4af66720b73b8b51018fde4c9b18"


def _key_draft(n: int, liaison: str, action: str = "liaison.enrol",
               outcome: Literal["granted", "denied"] = "granted") -> EntryDraft:
    return EntryDraft(time=T0, actor=None, action=action,
                      subject={"type": "liaison", "id": liaison}, outcome=outcome,
                      reason="bad-signature" if outcome == "denied" else None,
                      details={"n": n})


def test_the_leaf_vector() -> None:
    assert VECTOR_LEAF.encode().hex() == VECTOR_BYTES
    assert decode_key_leaf(bytes.fromhex(VECTOR_BYTES)) == VECTOR_LEAF
    assert VECTOR_LEAF.hash() == reference.leaf(bytes.fromhex(VECTOR_BYTES))
    assert VECTOR_LEAF.hash().hex() == VECTOR_HASH


@given(ident=st.text(min_size=1, max_size=60).filter(lambda s: len(s.encode()) <= 255),
       index=st.integers(0, 2**63 - 1), hashed=st.binary(min_size=32, max_size=32))
def test_a_leaf_round_trips(ident: str, index: int, hashed: bytes) -> None:
    leaf = KeyLeaf(ident, index, hashed)
    assert decode_key_leaf(leaf.encode()) == leaf


@pytest.mark.parametrize("data", [b"", bytes(41), bytes(8 + 32) + b"\x05abc",
                                  bytes(8 + 32) + b"\x01\xff",
                                  b"\xff" * 8 + bytes(32) + b"\x01a"])
def test_a_malformed_leaf_is_refused(data: bytes) -> None:
    with pytest.raises(EntryFormatError):
        decode_key_leaf(data)


def test_only_key_entries_about_a_liaison_are_leaves() -> None:
    ledger = Ledger(MemoryStorage())
    appended = ledger.append_many([
        draft(0), _key_draft(1, "alice"), _key_draft(2, "alice", "key.rotate", "denied"),
        dataclasses.replace(draft(3), details={"action": "key.rotate"}),
        dataclasses.replace(_key_draft(4, "x"), subject={"type": "packet", "id": "x"}),
        _key_draft(5, "bob", "key.revoke"), _key_draft(6, "carol", "liaison.read")])
    leaves = key_leaves(0, [a.raw for a in appended])
    assert [(leaf.liaison_id, leaf.ledger_index) for leaf in leaves] == [
        ("alice", 1), ("alice", 2), ("bob", 5)]
    assert leaves[0].ledger_leaf_hash == appended[1].leaf_hash
    assert key_leaf_of(0, b"not json \"action\":\"key.rotate\"") is None


def test_the_extension_line_round_trips_and_is_strict() -> None:
    root = bytes(range(32))
    line = extension_line(7, root)
    assert line.startswith("cadena-key-log 7 ")
    assert key_log_head(Checkpoint(ORIGIN, 9, bytes(32), (line,))) == KeyLogHead(7, root)
    assert key_log_head(Checkpoint(ORIGIN, 9, bytes(32), ("other ext",))) is None
    for bad in [(line, line), ("cadena-key-log 07 " + line.split()[2],),
                ("cadena-key-log 7",), ("cadena-key-log 7 AAAA",)]:
        with pytest.raises(NoteFormatError):
            key_log_head(Checkpoint(ORIGIN, 9, bytes(32), bad))


@given(leaves=st.lists(st.binary(min_size=32, max_size=32), max_size=40),
       cuts=st.lists(st.integers(0, 40), max_size=4))
def test_the_frontier_extended_in_any_pieces_gives_the_reference_root(
        leaves: list[bytes], cuts: list[int]) -> None:
    tree, done = KeyLogFrontier(), 0
    for cut in sorted({min(c, len(leaves)) for c in cuts} | {len(leaves)}):
        tree = KeyLogFrontier(tree.size, tree.hashes)  # as a profile stores it
        tree.extend(leaves[done:cut])
        done = cut
    assert tree.root() == reference.mth(leaves)
    tree.check(KeyLogHead(len(leaves), reference.mth(leaves)))
    with pytest.raises(VerificationError):
        tree.check(KeyLogHead(len(leaves) + 1, reference.mth(leaves)))
    with pytest.raises(VerificationError):
        tree.check(KeyLogHead(len(leaves), bytes(b ^ 1 for b in tree.root())))


def _keyed_ledger() -> tuple[MemoryStorage, MemoryKeyLog]:
    storage, keys = MemoryStorage(), MemoryKeyLog()
    ledger = Ledger(storage)
    for n in range(4):
        ledger.append_many([draft(10 * n), _key_draft(n, f"liaison-{n}"), draft(10 * n + 1)])
        keys.checkpoint(storage, SIGNER, ORIGIN)
    return storage, keys


def test_checkpoints_carry_the_key_log_and_the_auditor_recomputes_it() -> None:
    storage, keys = _keyed_ledger()
    assert verify_ledger(storage, VERIFIER).ok
    last = open_checkpoint(storage.checkpoint_list[-1].note, VERIFIER)
    assert key_log_head(last) == KeyLogHead(4, reference.mth([leaf.hash()
                                                              for leaf in keys.leaves]))


@pytest.mark.parametrize("which", [0, 2, 3])
def test_a_tampered_key_root_is_a_located_fault(which: int) -> None:
    # The operator re-signs a checkpoint with the ledger key: same tree,
    # another key log (as a dishonest checkpointer would sign it).
    storage, _ = _keyed_ledger()
    stored = storage.checkpoint_list[which]
    honest = open_checkpoint(stored.note, VERIFIER)
    head = key_log_head(honest)
    assert head is not None
    forged = Checkpoint(ORIGIN, honest.size, honest.root,
                        (extension_line(head.size, bytes(32)),))
    storage.checkpoint_list[which] = dataclasses.replace(
        stored, note=sign_checkpoint(forged, SIGNER))
    report = verify_ledger(storage, VERIFIER)
    assert (report.ok, report.fault, report.first_bad_index) == (
        False, Fault.KEY_LOG_MISMATCH, stored.size - 1)


def test_a_checkpoint_that_drops_the_key_log_is_a_fault() -> None:
    storage, _ = _keyed_ledger()
    stored = storage.checkpoint_list[2]
    honest = open_checkpoint(stored.note, VERIFIER)
    bare = Checkpoint(ORIGIN, honest.size, honest.root)
    storage.checkpoint_list[2] = dataclasses.replace(stored, note=sign_checkpoint(bare, SIGNER))
    report = verify_ledger(storage, VERIFIER)
    assert report.fault is Fault.KEY_LOG_MISMATCH
    assert "carries no key log" in report.detail


def test_the_key_log_of_a_lost_race_is_refused_in_memory_too() -> None:
    storage, keys = _keyed_ledger()
    stale = keys.base()
    Ledger(storage).append_many([_key_draft(9, "late")])
    keys.checkpoint(storage, SIGNER, ORIGIN)
    Ledger(storage).append_many([draft(99)])
    prepared = prepare_keyed_checkpoint(storage, storage.size(), SIGNER, ORIGIN, stale)
    assert prepared is not None
    with pytest.raises(ConflictError):
        keys.store(prepared)
