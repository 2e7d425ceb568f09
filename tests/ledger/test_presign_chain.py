"""The checkpointer's chain check reads every new entry once, across its batch boundaries."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger import CorruptLedgerError, Ledger, MemoryStorage
from ledger.store import presign
from tests.ledger.helpers import draft


def _ledger(size: int) -> MemoryStorage:
    storage = MemoryStorage()
    Ledger(storage).append_many([draft(n) for n in range(size)])
    return storage


@contextmanager
def _batches_of(size: int) -> Iterator[None]:
    saved = presign._BATCH
    presign._BATCH = size
    try:
        yield
    finally:
        presign._BATCH = saved


@given(size=st.integers(min_value=1, max_value=40), batch=st.integers(min_value=1, max_value=7),
       start=st.integers(min_value=0, max_value=40))
def test_an_intact_chain_passes_whatever_the_batch_size(size: int, batch: int,
                                                         start: int) -> None:
    # A batch boundary once swallowed the entry after it (zip over the shared
    # iterator took one too many): an intact ledger was refused past 10,000.
    storage = _ledger(size)
    with _batches_of(batch):
        presign.check_chain(storage, min(start, size - 1), size)


def test_a_broken_link_is_still_found_across_batches() -> None:
    storage = _ledger(12)
    raw = storage.entry_list[7]
    at = raw.index(b'"prev":"') + len(b'"prev":"')
    flipped = b"1" if raw[at:at + 1] == b"0" else b"0"
    storage.entry_list[7] = raw[:at] + flipped + raw[at + 1:]
    with _batches_of(3), pytest.raises(CorruptLedgerError, match="entry 7"):
        presign.check_chain(storage, 1, 12)
