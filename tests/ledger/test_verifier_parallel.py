"""The parallel pass: workers, shares, failures, and the parent's checks between chunks.

Every tampering test of ``test_verifier.py`` and ``test_tamper_db.py`` also
runs the chunked pass in this process and in worker processes; these tests
cover what those cannot reach: uneven splits, broken or dying workers, a lost
share, and the size below which no worker starts.
"""

from __future__ import annotations

import os
from binascii import hexlify
from contextlib import AbstractContextManager
from multiprocessing import Pipe

import pytest

from ledger import Fault, LedgerReader, merkle, verify_ledger
from ledger.verify.chunk import check_chunks, levels
from ledger.verify.parallel import _links_and_upper, _share, chunked_report, plan
from ledger.verify.walk import walk_ledger
from tests.ledger.helpers import VERIFIER
from tests.ledger.test_verifier import MemoryOpener, Shape, build

# -- the parallel pass --------------------------------------------------------------


class BrokenOpener:
    """A worker whose database is unreachable."""

    def __call__(self) -> AbstractContextManager[LedgerReader]:
        raise OSError("no database here")


def test_a_failing_worker_hands_over_to_the_exact_pass() -> None:
    storage = build(Shape(40, (17, 40)))
    assert chunked_report(storage, VERIFIER, bits=2, opener=BrokenOpener(), workers=3) is None
    report = verify_ledger(storage, VERIFIER, opener=BrokenOpener(), workers=3, chunk_bits=2,
                           parallel_from=0)
    assert report.ok, report
    storage.entry_list[20] = storage.entry_list[21]
    found_exact = walk_ledger(storage, VERIFIER)
    assert verify_ledger(storage, VERIFIER, opener=BrokenOpener(), workers=3, chunk_bits=2,
                         parallel_from=0) == found_exact


@pytest.mark.parametrize(("size", "bits", "workers"), [(1, 0, 4), (64, 3, 3), (300, 4, 2),
                                                        (257, 5, 8)])
def test_workers_agree_with_the_exact_pass_on_any_split(size: int, bits: int,
                                                        workers: int) -> None:
    storage = build(Shape(size, tuple(sorted({1, size // 3 or 1, size}))))
    exact = walk_ledger(storage, VERIFIER)
    assert exact.ok
    opener = MemoryOpener(storage)
    assert chunked_report(storage, VERIFIER, bits=bits, opener=opener, workers=workers) == exact
    # A stored node above the chunk level, which only the parent can recompute.
    top = max(storage.node_hashes, key=lambda key: (key[0], key[1]))
    storage.node_hashes[top] = bytes(32)
    assert chunked_report(storage, VERIFIER, bits=bits, opener=opener, workers=workers) is None
    assert verify_ledger(storage, VERIFIER, opener=opener, workers=workers, chunk_bits=bits,
                         parallel_from=0) == walk_ledger(storage, VERIFIER)


def test_small_ledgers_start_no_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    import ledger.verify.parallel

    def no_workers(*args: object) -> None:
        raise AssertionError("workers started for a small ledger")

    monkeypatch.setattr(ledger.verify.parallel, "_in_workers", no_workers)
    storage = build(Shape(10, (10,)))
    assert verify_ledger(storage, VERIFIER, opener=BrokenOpener(), workers=4).ok


class DyingOpener:
    """A worker that dies without a word (killed, out of memory...)."""

    def __call__(self) -> AbstractContextManager[LedgerReader]:
        os._exit(3)


def test_a_dying_worker_hands_over_to_the_exact_pass() -> None:
    storage = build(Shape(40, (40,)))
    assert chunked_report(storage, VERIFIER, bits=2, opener=DyingOpener(), workers=2) is None
    assert verify_ledger(storage, VERIFIER, opener=DyingOpener(), workers=2, chunk_bits=2,
                         parallel_from=0).ok


def test_a_worker_share_answers_none_when_not_clean() -> None:
    storage = build(Shape(12, (12,)))
    tasks = plan(12, [12], 2)
    summaries = check_chunks(MemoryOpener(storage), tasks)
    assert summaries is not None
    assert [s.start for s in summaries] == [0, 4, 8]
    storage.entry_list[5] = storage.entry_list[6]
    assert check_chunks(MemoryOpener(storage), tasks) is None
    receive, send = Pipe(duplex=False)
    _share(BrokenOpener(), tasks, send)  # in this process: the failure becomes None
    assert receive.recv() is None


def test_a_lost_chunk_is_never_taken_for_clean() -> None:
    storage = build(Shape(12, (12,)))
    tasks = plan(12, [12], 2)
    summaries = check_chunks(MemoryOpener(storage), tasks)
    assert summaries is not None
    assert _links_and_upper(summaries, tasks, 2) is not None
    assert _links_and_upper(summaries[:1] + summaries[2:], tasks, 2) is None


def test_a_broken_link_between_chunks_is_never_taken_for_clean() -> None:
    storage = build(Shape(8, ()))
    # Entry 4 (the first of the second chunk of 4) names another prev, the
    # entries after it are re-linked to it, and the stored tree is rebuilt
    # over the changed entries: only the link between the chunks is wrong.
    original = [hexlify(merkle.leaf_hash(raw)) for raw in storage.entry_list]
    new_prev = b"ab" * 32
    for k in range(4, 8):
        storage.entry_list[k] = storage.entry_list[k].replace(original[k - 1], new_prev)
        new_prev = hexlify(merkle.leaf_hash(storage.entry_list[k]))
    tree = levels([merkle.leaf_hash(raw) for raw in storage.entry_list])
    storage.node_hashes = {(level, i): value for level, row in enumerate(tree)
                           for i, value in enumerate(row)}
    assert chunked_report(storage, VERIFIER, bits=2) is None
    report = verify_ledger(storage, VERIFIER, chunk_bits=2)
    assert (report.first_bad_index, report.fault) == (3, Fault.MODIFIED_ENTRY)
    assert report == walk_ledger(storage, VERIFIER)
