"""An append starts from the frontier the process's last append left (``LastAppend``).

The frontier of the head an append locks is the one this process's previous
append computed, extended by the nodes stored since; it is believed only
where the stored entry at the end of that tree still has its leaf hash. An
append that rolled back, another process's appends, a head that moved past
what one read can cover, and a tampered head must all still give exactly the
tree the committed entries make.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, select, update

from app.ledger.unit_of_work import make_session_factory, transaction
from app.models.ledger import LEDGER_TABLES as T
from ledger import CorruptLedgerError, Ledger, TreeCache, merkle
from ledger.format.merkle import Node, TreeBuilder
from ledger.sql import SqlStorage
from ledger.sql import pipeline as sqlpipeline
from tests.ledger.test_tamper_db import draft, engine, tamper_db_url

__all__ = ["engine", "tamper_db_url"]  # the fixtures, reused: one database per backend


def _empty(engine: Engine) -> None:
    """Empty the ledger (the module's database is shared by its tests)."""
    with engine.begin() as conn:
        for table in (T.checkpoints, T.nodes, T.entries):
            conn.execute(delete(table))
        conn.execute(update(T.head).values(size=0, last_leaf_hash=None, checkpoint_seq=0))


_RAW = itertools.count()


class Process:
    """A server process: its own engine, sessions and cache, on the shared database."""

    def __init__(self, engine: Engine) -> None:
        self.cache = TreeCache()
        self.factory = make_session_factory(engine, self.cache)

    def append(self, count: int, *, commit: bool = True) -> list[bytes]:
        """Append ``count`` distinct entries as the ledger does; commit or roll back."""
        session = self.factory()
        try:
            storage = SqlStorage(session, T, cache=self.cache)
            head = storage.lock_head()
            builder = TreeBuilder(head.size, storage.nodes(merkle.frontier(head.size)))
            raws = [f'{{"n":{next(_RAW)},"at":{head.size + i}}}'.encode() for i in range(count)]
            storage.append(head.size, raws, builder.extend(merkle.leaf_hash(r) for r in raws))
            if commit:
                session.commit()
            else:
                session.rollback()
            return raws
        finally:
            session.close()


def stored_nodes(engine: Engine) -> dict[Node, bytes]:
    """Every stored node, by key."""
    n = T.nodes.c
    with engine.connect() as conn:
        return {(int(level), int(index)): bytes(value)
                for level, index, value in conn.execute(select(n.level, n.index, n.hash))}


def expected_nodes(engine: Engine) -> dict[Node, bytes]:
    """The nodes the committed entries make, computed from scratch."""
    e = T.entries.c
    with engine.connect() as conn:
        raws = [bytes(r) for r in conn.execute(select(e.entry).order_by(e.index)).scalars()]
    builder = TreeBuilder(0, {})
    return dict(builder.extend(merkle.leaf_hash(raw) for raw in raws))


STEPS = st.lists(st.tuples(st.integers(0, 1), st.integers(1, 6), st.booleans()),
                 min_size=1, max_size=12)
"""(which process, how many entries, whether it commits), in order."""


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=STEPS, reach=st.integers(1, 8))
def test_two_processes_and_rollbacks_store_exactly_the_committed_tree(
        engine: Engine, steps: list[tuple[int, int, bool]], reach: int) -> None:
    _empty(engine)
    processes = [Process(engine), Process(engine)]
    with pytest.MonkeyPatch.context() as patch:  # what one read covers: small, so heads pass it
        patch.setattr(sqlpipeline, "MAX_SINCE", reach)
        for which, count, commit in steps:
            processes[which].append(count, commit=commit)
    assert stored_nodes(engine) == expected_nodes(engine)


def test_the_next_append_starts_from_the_frontier_the_last_one_left(engine: Engine) -> None:
    _empty(engine)
    process = Process(engine)
    process.append(3)  # frontier: (1, 0) and (0, 2)
    with engine.begin() as conn:  # the stored copy of (1, 0) is not read again
        conn.execute(update(T.nodes).where(T.nodes.c.level == 1, T.nodes.c.index == 0)
                     .values(hash=bytes(32)))
    process.append(1)  # completes (1, 1) and (2, 0) = H((1, 0), (1, 1))
    assert stored_nodes(engine)[(2, 0)] == expected_nodes(engine)[(2, 0)]


def test_another_process_that_read_the_stored_frontier_uses_it(engine: Engine) -> None:
    """The check above can fail: without a last append the frontier is read as stored."""
    _empty(engine)
    Process(engine).append(3)
    with engine.begin() as conn:
        conn.execute(update(T.nodes).where(T.nodes.c.level == 1, T.nodes.c.index == 0)
                     .values(hash=bytes(32)))
    Process(engine).append(1)
    assert stored_nodes(engine)[(2, 0)] != expected_nodes(engine)[(2, 0)]


def test_a_rolled_back_append_is_not_built_on(engine: Engine) -> None:
    _empty(engine)
    first, second = Process(engine), Process(engine)
    first.append(2)
    first.append(3, commit=False)  # its frontier (size 5) is kept, its rows are not
    second.append(4)  # other entries at 2..5
    first.append(1)
    assert stored_nodes(engine) == expected_nodes(engine)


def test_a_head_that_no_longer_names_the_last_entry_is_still_refused(engine: Engine) -> None:
    _empty(engine)
    cache = TreeCache()
    factory = make_session_factory(engine, cache)
    with transaction(factory) as session:
        Ledger(SqlStorage(session, T, cache=cache)).append_many(draft(n) for n in range(5))
    assert cache.last_append() is not None
    with engine.begin() as conn:
        conn.execute(update(T.head).values(last_leaf_hash=bytes(32)))
    with pytest.raises(CorruptLedgerError), transaction(factory) as session:
        Ledger(SqlStorage(session, T, cache=cache)).append(draft(5))
