"""The verifier finds every tampering of a MemoryStorage ledger: first bad index and kind.

Each test builds a real ledger (some entries, signed checkpoints at some
sizes), applies one mutation straight to the storage's lists and dicts, and
checks the report against the rules in ``ledger.verify.verifier``'s docstring.
"""

from __future__ import annotations

import hashlib
import itertools
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl.signing import SigningKey

from ledger import (
    GENESIS_PREV,
    Checkpoint,
    EntryFormatError,
    Fault,
    LedgerReader,
    LedgerReport,
    MemoryStorage,
    NoteSigner,
    StoredCheckpoint,
    VerificationError,
    check_ledger,
    encode_entry,
    merkle,
    parse_entry,
    sign_checkpoint,
    verify_ledger,
)
from ledger.verify.parallel import chunked_report
from ledger.verify.walk import walk_ledger
from tests.ledger.helpers import ORIGIN, SIGNER, VERIFIER, build_ledger, draft


@dataclass(frozen=True)
class Shape:
    """How many entries, and the sizes that got a signed checkpoint."""

    size: int
    checkpoints: tuple[int, ...]


@st.composite
def shapes(draw: st.DrawFn, min_size: int = 1, signed: bool = False) -> Shape:
    """A ledger shape of up to 24 entries and up to 4 checkpoints."""
    size = draw(st.integers(min_size, 24), label="size")
    sizes = draw(st.sets(st.integers(1, max(size, 1)), min_size=int(signed), max_size=4)
                 if size else st.just(set()), label="cps")
    return Shape(size, tuple(sorted(sizes)))


def build(shape: Shape) -> MemoryStorage:
    """The ledger of that shape."""
    storage, _ = build_ledger(shape.size, shape.checkpoints)
    return storage


CALLS = itertools.count()


@dataclass(frozen=True)
class MemoryOpener:
    """A worker's reader: the storage, pickled into the worker process."""

    storage: MemoryStorage

    def __call__(self) -> AbstractContextManager[LedgerReader]:
        return nullcontext(self.storage)


def every_pass(storage: MemoryStorage) -> LedgerReport:
    """The exact pass's report, after checking every other way of verifying agrees with it.

    Chunked in this process with chunks of 1, 2, 4 and 8 leaves (every chunk
    boundary a small ledger can have), and for every third example in two
    worker processes.
    """
    exact = walk_ledger(storage, VERIFIER)
    for bits in (0, 1, 2, 3):
        assert verify_ledger(storage, VERIFIER, chunk_bits=bits) == exact, bits
        # On a clean ledger the chunked pass itself must say so (no silent fallback).
        assert (chunked_report(storage, VERIFIER, bits=bits) is not None) == exact.ok
    if next(CALLS) % 3 == 0:  # starting processes for every example is the slow part
        # What verify_ledger(..., workers=2) does, with the chunked answer checked apart.
        via_workers = chunked_report(storage, VERIFIER, bits=1, opener=MemoryOpener(storage),
                                     workers=2)
        assert (via_workers is not None) == exact.ok
        assert via_workers in (None, exact)
    assert verify_ledger(storage, VERIFIER) == exact
    return exact


def found(storage: MemoryStorage, index: int, fault: Fault) -> None:
    """The verifier reports exactly this first bad index and fault, and check_ledger raises."""
    report = every_pass(storage)
    assert (report.ok, report.first_bad_index, report.fault) == (False, index, fault), report
    with pytest.raises(VerificationError, match=fault.value):
        check_ledger(storage, VERIFIER)


@given(shape=shapes(min_size=0))
def test_an_untouched_ledger_verifies(shape: Shape) -> None:
    storage = build(shape)
    report = every_pass(storage)
    assert report == LedgerReport(True, shape.size, len(shape.checkpoints), None, None,
                                  report.detail)
    check_ledger(storage, VERIFIER)


def test_cosignatures_on_a_checkpoint_do_not_disturb_verification() -> None:
    from ledger import CosignatureSigner, add_signature_lines, parse_checkpoint_body
    storage = build(Shape(5, (5,)))
    stored = storage.checkpoint_list[0]
    witness = CosignatureSigner("w.example", SigningKey(bytes(32)))
    body = parse_checkpoint_body(stored.note.split("\n\n")[0] + "\n")
    storage.update_checkpoint_note(5, add_signature_lines(stored.note, [witness.cosign(body, 1)]))
    check_ledger(storage, VERIFIER)


# -- entries -----------------------------------------------------------------------


@given(shape=shapes(), data=st.data())
def test_flipped_entry_bit_is_a_modified_or_malformed_entry(
        shape: Shape, data: st.DataObject) -> None:
    storage = build(shape)
    i = data.draw(st.integers(0, shape.size - 1), label="entry")
    raw = bytearray(storage.entry_list[i])
    pos = data.draw(st.integers(0, len(raw) - 1), label="byte")
    raw[pos] ^= 1 << data.draw(st.integers(0, 7), label="bit")
    storage.entry_list[i] = bytes(raw)
    try:
        parse_entry(bytes(raw))
        expected = Fault.MODIFIED_ENTRY
    except EntryFormatError:
        expected = Fault.MALFORMED_ENTRY
    found(storage, i, expected)


@given(shape=shapes(), data=st.data())
def test_deleted_entry_is_missing_or_a_truncation(shape: Shape, data: st.DataObject) -> None:
    storage = build(shape)
    i = data.draw(st.integers(0, shape.size - 1), label="entry")
    del storage.entry_list[i]
    last_is_signed = i == shape.size - 1 and shape.size in shape.checkpoints
    found(storage, i, Fault.TRUNCATED if last_is_signed else Fault.MISSING_ENTRY)


@given(shape=shapes(), data=st.data())
def test_duplicated_entry_is_an_inserted_entry(shape: Shape, data: st.DataObject) -> None:
    storage = build(shape)
    at = data.draw(st.integers(1, shape.size), label="position")
    source = data.draw(st.integers(0, at - 1), label="copied")
    storage.entry_list.insert(at, storage.entry_list[source])
    found(storage, at, Fault.INSERTED)


@given(shape=shapes(min_size=2), data=st.data())
def test_swapped_entries_are_reordered(shape: Shape, data: st.DataObject) -> None:
    storage = build(shape)
    i = data.draw(st.integers(0, shape.size - 2), label="first")
    j = data.draw(st.integers(i + 1, shape.size - 1), label="second")
    entries = storage.entry_list
    entries[i], entries[j] = entries[j], entries[i]
    found(storage, i, Fault.REORDERED)


@given(shape=shapes(), data=st.data())
def test_forged_entry_that_links_correctly_is_an_inserted_entry(
        shape: Shape, data: st.DataObject) -> None:
    storage = build(shape)
    at = data.draw(st.integers(0, shape.size), label="position")
    prev = GENESIS_PREV if at == 0 else merkle.leaf_hash(storage.entry_list[at - 1])
    storage.entry_list.insert(at, encode_entry(draft(1000 + at), at, prev))
    found(storage, at, Fault.INSERTED)


# -- nodes -------------------------------------------------------------------------


@given(shape=shapes(), data=st.data())
def test_changed_stored_node_is_a_bad_node(shape: Shape, data: st.DataObject) -> None:
    storage = build(shape)
    key = data.draw(st.sampled_from(sorted(storage.node_hashes)), label="node")
    storage.node_hashes[key] = hashlib.sha256(b"forged" + bytes(key)).digest()
    level, index = key
    last = shape.size - 1
    # A last, even leaf that no signed checkpoint covers has no other witness
    # than its node: the verifier then presumes the entry, not the node, changed.
    unattested = (level == 0 and index == last and index % 2 == 0
                  and shape.size not in shape.checkpoints)
    found(storage, index << level, Fault.MODIFIED_ENTRY if unattested else Fault.BAD_NODE)


@given(shape=shapes(min_size=2), data=st.data())
def test_missing_stored_node_is_a_bad_node(shape: Shape, data: st.DataObject) -> None:
    storage = build(shape)
    key = data.draw(st.sampled_from(sorted(k for k in storage.node_hashes if k[0] > 0)
                                    or [(0, 0)]), label="node")
    if key[0] == 0:
        return  # a two-leaf tree has one inner node, drawn above when it exists
    del storage.node_hashes[key]
    found(storage, key[1] << key[0], Fault.BAD_NODE)


# -- checkpoints -------------------------------------------------------------------


def _resign(root: bytes, size: int, signer: NoteSigner = SIGNER) -> StoredCheckpoint:
    return StoredCheckpoint(size, root, sign_checkpoint(Checkpoint(ORIGIN, size, root), signer))


@given(shape=shapes(signed=True), data=st.data())
def test_altered_checkpoint_note_has_a_bad_signature(shape: Shape, data: st.DataObject) -> None:
    storage = build(shape)
    k = data.draw(st.integers(0, len(shape.checkpoints) - 1), label="checkpoint")
    stored = storage.checkpoint_list[k]
    pos = data.draw(st.integers(0, len(stored.note) - 2), label="char")
    char = data.draw(st.sampled_from("0A+/\n x"), label="new char")
    note = stored.note[:pos] + char + stored.note[pos + 1:]
    if note == stored.note:
        return
    storage.checkpoint_list[k] = StoredCheckpoint(stored.size, stored.root, note)
    found(storage, stored.size - 1, Fault.BAD_CHECKPOINT_SIGNATURE)


@given(shape=shapes(signed=True), data=st.data())
def test_checkpoint_signed_by_another_key_has_a_bad_signature(
        shape: Shape, data: st.DataObject) -> None:
    storage = build(shape)
    k = data.draw(st.integers(0, len(shape.checkpoints) - 1), label="checkpoint")
    stored = storage.checkpoint_list[k]
    impostor = NoteSigner(ORIGIN, SigningKey(hashlib.sha256(b"impostor").digest()))
    storage.checkpoint_list[k] = _resign(stored.root, stored.size, impostor)
    found(storage, stored.size - 1, Fault.BAD_CHECKPOINT_SIGNATURE)


@given(shape=shapes(signed=True), data=st.data())
def test_validly_signed_wrong_root_is_a_fork_or_a_root_mismatch(
        shape: Shape, data: st.DataObject) -> None:
    storage = build(shape)
    size = data.draw(st.integers(1, shape.size), label="forged size")
    root = hashlib.sha256(b"another history").digest()
    cps = [c for c in storage.checkpoint_list if c.size != size] + [_resign(root, size)]
    storage.checkpoint_list = sorted(cps, key=lambda c: c.size)
    later = any(c > size for c in shape.checkpoints)
    found(storage, size - 1, Fault.FORK if later else Fault.CHECKPOINT_ROOT_MISMATCH)


@given(shape=shapes(signed=True), data=st.data())
def test_stored_root_column_that_differs_from_the_note_is_a_root_mismatch(
        shape: Shape, data: st.DataObject) -> None:
    storage = build(shape)
    k = data.draw(st.integers(0, len(shape.checkpoints) - 1), label="checkpoint")
    stored = storage.checkpoint_list[k]
    storage.checkpoint_list[k] = StoredCheckpoint(stored.size, bytes(32), stored.note)
    found(storage, stored.size - 1, Fault.CHECKPOINT_ROOT_MISMATCH)


@given(shape=shapes())
def test_validly_signed_checkpoint_beyond_the_entries_is_a_truncation(shape: Shape) -> None:
    storage = build(shape)
    storage.checkpoint_list.append(_resign(bytes(32), shape.size + 3))
    found(storage, shape.size, Fault.TRUNCATED)


@given(shape=shapes(signed=True), data=st.data())
def test_truncation_below_a_signed_checkpoint_is_reported(
        shape: Shape, data: st.DataObject) -> None:
    storage = build(shape)
    keep = data.draw(st.integers(0, shape.checkpoints[-1] - 1), label="kept")
    del storage.entry_list[keep:]
    storage.node_hashes = {k: v for k, v in storage.node_hashes.items()
                           if ((k[1] + 1) << k[0]) - 1 < keep}
    found(storage, keep, Fault.TRUNCATED)


def test_duplicate_checkpoint_size_is_a_fork() -> None:
    storage = build(Shape(6, (3, 6)))
    storage.checkpoint_list.insert(1, storage.checkpoint_list[0])
    found(storage, 2, Fault.FORK)


# -- batches: the fast path and the entry-by-entry replay agree -------------------


@given(shape=shapes(min_size=2), data=st.data(), batch=st.sampled_from([1, 2, 3, 7]))
def test_batch_size_never_changes_the_report(shape: Shape, data: st.DataObject,
                                             batch: int) -> None:
    import ledger.verify.walk as verifier_module
    storage = build(shape)
    if data.draw(st.booleans(), label="tamper with an entry"):
        i = data.draw(st.integers(0, shape.size - 1), label="entry")
        raw = bytearray(storage.entry_list[i])
        raw[data.draw(st.integers(0, len(raw) - 1), label="byte")] ^= 1 << data.draw(
            st.integers(0, 7), label="bit")
        storage.entry_list[i] = bytes(raw)
    else:
        key = data.draw(st.sampled_from(sorted(storage.node_hashes)), label="node")
        storage.node_hashes[key] = bytes(32)
    whole = verify_ledger(storage, VERIFIER)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(verifier_module, "BATCH", batch)
        assert verify_ledger(storage, VERIFIER) == whole


def test_entries_off_the_fast_path_verify_and_are_located_when_changed() -> None:
    from ledger import Actor, EntryDraft, Ledger
    from tests.ledger.helpers import T0
    storage = MemoryStorage()
    ledger = Ledger(storage)
    odd: list[dict[str, Any]] = [
        {"subject": {"id": 'quoted "id"', "type": "packet"}},
        {"details": {"path": "a\\b", "nested": {"deep": [1, None, True]}}},
        {"actor": Actor(liaison="señora", key="k\u2028")},
        {"subject": {"channel": "c", "id": "p", "type": "packet"}},
    ]
    drafts = [draft(n) for n in range(12)]
    for k, change in enumerate(odd):
        drafts.insert(3 * k + 1, EntryDraft(**{**draft(100 + k).__dict__, "time": T0, **change}))
    ledger.append_many(drafts)
    ledger.checkpoint(SIGNER, ORIGIN)
    assert verify_ledger(storage, VERIFIER).ok
    at = 3 * 1 + 1  # the nested details
    assert b"[1," in storage.entry_list[at]
    storage.entry_list[at] = storage.entry_list[at].replace(b"[1,", b"[2,")
    found(storage, at, Fault.MODIFIED_ENTRY)
