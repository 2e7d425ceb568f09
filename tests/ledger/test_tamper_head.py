"""The head, the stored leaf hashes and the checkpoint rows are verified too (issue 18, item 3).

Each property builds a ledger as ``test_tamper_db`` does, corrupts one thing
the entries alone do not prove, and ``verify_ledger`` (every pass: the exact
walk, the chunked pass, in worker processes) names it with its index and
kind. The append path and the checkpointer refuse to build on such rows.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, select, update

from app.ledger.unit_of_work import make_session_factory, transaction
from ledger import CorruptLedgerError, Fault, Ledger, leaf_hash, prepare_checkpoint
from ledger.sql import SqlStorage
from tests.ledger.test_tamper_db import (
    ORIGIN,
    SIGNER,
    TAMPER_SETTINGS,
    Shape,
    T,
    assert_found,
    build,
    draft,
    engine,
    shapes,
    tamper_db_url,
)

__all__ = ["engine", "tamper_db_url"]  # the fixtures, reused

CORRUPT = st.sampled_from(["last_leaf_hash", "size_below", "checkpoint_seq_below"])
"""Head corruptions named ``bad_head``; a size above the entries is ``missing_entry`` (below)."""


def _sizes(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return [int(s) for s in conn.execute(select(T.checkpoints.c.size)
                                             .order_by(T.checkpoints.c.size)).scalars()]


@TAMPER_SETTINGS
@given(shape=shapes(), how=CORRUPT, data=st.data())
def test_corrupted_head_is_a_bad_head_at_the_last_entry(
    engine: Engine, shape: Shape, how: str, data: st.DataObject
) -> None:
    entries = build(engine, shape)
    n = len(entries)
    values: dict[str, object]
    if how == "last_leaf_hash":
        wrong = st.binary(min_size=32, max_size=32).filter(lambda b: b != leaf_hash(entries[-1]))
        values = {"last_leaf_hash": data.draw(wrong, label="head last leaf hash")}
    elif how == "size_below":
        values = {"size": data.draw(st.integers(0, n - 1), label="head size")}
    else:
        below = st.integers(0, len(_sizes(engine)) - 1)
        values = {"checkpoint_seq": data.draw(below, label="head checkpoint number")}
    with engine.begin() as conn:
        conn.execute(update(T.head).values(**values))
    assert_found(engine, n - 1, Fault.BAD_HEAD)


@TAMPER_SETTINGS
@given(shape=shapes(), data=st.data())
def test_head_size_above_the_entries_is_a_missing_entry_after_the_last(
    engine: Engine, shape: Shape, data: st.DataObject
) -> None:
    entries = build(engine, shape)
    with engine.begin() as conn:
        conn.execute(update(T.head).values(size=len(entries) + data.draw(st.integers(1, 5))))
    assert_found(engine, len(entries), Fault.MISSING_ENTRY)


@TAMPER_SETTINGS
@given(shape=shapes(), data=st.data())
def test_corrupted_stored_leaf_hash_is_a_bad_leaf_hash_at_its_entry(
    engine: Engine, shape: Shape, data: st.DataObject
) -> None:
    entries = build(engine, shape)
    at = data.draw(st.integers(0, len(entries) - 1), label="entry")
    with engine.begin() as conn:
        conn.execute(update(T.entries).where(T.entries.c.index == at)
                     .values(leaf_hash=bytes(32)))
    assert_found(engine, at, Fault.BAD_LEAF_HASH)


@TAMPER_SETTINGS
@given(shape=shapes(), data=st.data())
def test_deleted_checkpoint_row_is_a_missing_checkpoint_after_the_one_before(
    engine: Engine, shape: Shape, data: st.DataObject
) -> None:
    build(engine, shape)
    sizes = _sizes(engine)
    gone = data.draw(st.sampled_from(sizes), label="deleted checkpoint")  # the latest included
    with engine.begin() as conn:
        conn.execute(delete(T.checkpoints).where(T.checkpoints.c.size == gone))
    before = [size for size in sizes if size < gone]
    assert_found(engine, before[-1] if before else 0, Fault.MISSING_CHECKPOINT)


def test_append_refuses_to_link_to_a_head_that_is_not_the_last_entry(engine: Engine) -> None:
    build(engine, Shape(5, (5,)))
    with engine.begin() as conn:
        conn.execute(update(T.head).values(last_leaf_hash=bytes(32)))
    with pytest.raises(CorruptLedgerError), transaction(make_session_factory(engine)) as session:
        Ledger(SqlStorage(session, T)).append(draft(5))
    assert_found(engine, 4, Fault.BAD_HEAD)  # nothing was linked to it


def test_checkpointer_refuses_to_sign_entries_that_do_not_chain(engine: Engine) -> None:
    build(engine, Shape(6, (3,)))
    # The head and the stored leaf hash agree, but entry 4 links to a forged hash.
    with engine.begin() as conn:
        raw = bytes(conn.execute(select(T.entries.c.entry)
                                 .where(T.entries.c.index == 4)).scalar_one())
        at = raw.index(b'"prev":"') + len(b'"prev":"')
        forged = raw[:at] + b"f" * 64 + raw[at + 64:]
        conn.execute(update(T.entries).where(T.entries.c.index == 4)
                     .values(entry=forged, leaf_hash=leaf_hash(forged)))
    with transaction(make_session_factory(engine)) as session:
        storage = SqlStorage(session, T)
        with pytest.raises(CorruptLedgerError, match="entry 4 does not link"):
            prepare_checkpoint(storage, 6, SIGNER, ORIGIN)
