"""The ledger append waits for COMMIT on PostgreSQL (ADR 0028): one round trip fewer, same ledger.

Between the head lock and the end of the transaction the unit of work sends
one pipeline: the append's compare-and-swap with its rows, the queued rows
and ``COMMIT``. Whatever the transaction runs before then (an ORM query, a
read of the ledger's tables, a second append) sends the append first, so it
reads its own writes; a rollback drops it; a head that moved fails the
COMMIT, and nothing of the transaction is kept. The same properties hold on
SQLite, where the append runs at once.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import bindparam, func, insert, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import NullPool

from app.ledger import queries
from app.ledger.engine import make_engine
from app.ledger.recording import draft, ledger_for, record, record_many
from app.ledger.unit_of_work import UnitOfWork, insert_at_commit, make_session_factory
from app.models.certificate import LedgerSubject
from app.models.ledger import LEDGER_TABLES
from ledger import ConflictError, EntryDraft, merkle
from ledger.sql import dbapi
from ledger.sql import pipeline as sqlpipeline
from ledger.sql.driver import compiled

_COLUMNS = ("subject_type", "subject_id", "ledger_index", "action")
_INSERT = insert(LedgerSubject).values({c: bindparam(c) for c in _COLUMNS})


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[UnitOfWork]]:
    """Units of work on a fresh migrated database (SQLite and PostgreSQL)."""
    engine = make_engine(db_url, poolclass=NullPool)
    yield make_session_factory(engine)
    engine.dispose()


def _entry(n: int) -> EntryDraft:
    return draft(None, "test.append", {"type": "test", "id": str(n)})


def _head_on_the_wire(work: UnitOfWork) -> int:
    """The head's size as the transaction's connection sees it, without sending anything."""
    raw = dbapi(super(UnitOfWork, work).connection())  # Session's own: sends nothing
    with raw.cursor() as cursor:
        cursor.execute("SELECT size FROM ledger_head")
        return int(cursor.fetchone()[0])


def _size(sessions: sessionmaker[UnitOfWork]) -> int:
    with sessions() as work:
        return ledger_for(work).storage.size()


def _check_chain(sessions: sessionmaker[UnitOfWork]) -> int:
    """Every entry links to the one before, by index, and the stored tree is its tree."""
    with sessions() as work:
        storage = ledger_for(work).storage
        size = storage.size()
        assert storage.head().size == size
        prev = "0" * 64
        leaves = []
        for index, raw in enumerate(storage.entries(0, size)):
            entry = json.loads(raw)
            assert (entry["index"], entry["prev"]) == (index, prev)
            leaves.append(merkle.leaf_hash(raw))
            prev = leaves[-1].hex()
        if size:
            builder = merkle.TreeBuilder(0, {})
            nodes = dict(builder.extend(leaves))
            assert dict(storage.iter_nodes()) == nodes
            assert merkle.root(storage, size) == merkle.root(_Nodes(nodes), size)
        return size


@dataclasses.dataclass
class _Nodes:
    found: dict[tuple[int, int], bytes]

    def nodes(self, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        return {k: self.found[k] for k in keys if k in self.found}


@pytest.mark.postgres
def test_the_append_waits_for_the_commit_on_postgresql(postgres_url: str) -> None:
    engine = make_engine(postgres_url, poolclass=NullPool)
    try:
        sessions = make_session_factory(engine)
        with sessions() as work:
            appended = record(work, _entry(0))
            assert appended.index == 0
            assert _head_on_the_wire(work) == 0  # the head moves with COMMIT, not before
            work.commit()
        assert _size(sessions) == 1
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_the_appends_statement_alone_lets_its_commit_skip_the_disk(postgres_url: str) -> None:
    """The checked append turns ``synchronous_commit`` off for its own transaction (the
    head is released before the disk, ADR 0028) with no statement of its own to send;
    the next transaction on the connection waits for the disk again."""
    engine = make_engine(postgres_url, poolclass=NullPool)
    try:
        sessions = make_session_factory(engine)
        with sessions() as work:
            record(work, _entry(0))
            pending = sqlpipeline.take_pending_append(work)
            assert pending is not None
            conn = work.connection()
            raw = dbapi(conn)
            sql = compiled(conn, pending.checked)
            with raw.cursor() as cursor:
                cursor.execute("SET synchronous_commit TO on")
                cursor.execute(sql.string, sql.params([pending.params])[0])
                assert cursor.fetchone() is not None
                cursor.execute("SHOW synchronous_commit")
                assert cursor.fetchone()[0] == "off"
            work.commit()
            assert work.connection().exec_driver_sql("SHOW synchronous_commit").scalar() == "on"
        assert _size(sessions) == 1
    finally:
        engine.dispose()


def test_the_transaction_reads_its_own_append(sessions: sessionmaker[UnitOfWork]) -> None:
    with sessions() as work:
        first = record(work, _entry(0))
        assert queries.raw_entries(work, [first.index]) == {first.index: first.raw}
        assert ledger_for(work).storage.size() == 1
        second = record(work, _entry(1))  # a second lock sees the first append
        assert second.index == 1
        assert work.scalar(select(func.count()).select_from(LEDGER_TABLES.entries)) == 2
        work.commit()
    assert _check_chain(sessions) == 2


def test_a_rollback_drops_the_waiting_append(sessions: sessionmaker[UnitOfWork]) -> None:
    with sessions() as work:
        record(work, _entry(0))
        insert_at_commit(work, _INSERT, [{"subject_type": "t", "subject_id": "x",
                                          "ledger_index": 0, "action": "a"}])
        work.rollback()
        again = record(work, _entry(1))
        work.commit()
    assert again.index == 0
    assert _check_chain(sessions) == 1


@pytest.mark.postgres
def test_a_head_that_moved_fails_the_commit_and_keeps_nothing(postgres_url: str) -> None:
    engine = make_engine(postgres_url, poolclass=NullPool)
    try:
        sessions = make_session_factory(engine)
        with sessions() as work:
            record(work, _entry(0))
            work.commit()
        with sessions() as work:
            record(work, _entry(1))
            pending = sqlpipeline.take_pending_append(work)
            assert pending is not None  # as if it had been drafted against a stale head
            sqlpipeline.defer_append(work, dataclasses.replace(
                pending, params={**pending.params, "first": 0}))
            insert_at_commit(work, _INSERT, [{"subject_type": "t", "subject_id": "x",
                                              "ledger_index": 1, "action": "a"}])
            with pytest.raises(ConflictError):
                work.commit()
            work.rollback()
        assert _check_chain(sessions) == 1
        with sessions() as work:
            assert work.scalar(select(func.count()).select_from(LedgerSubject)) == 0
    finally:
        engine.dispose()


_TRANSACTION = st.tuples(st.integers(0, 3), st.booleans(), st.booleans())
"""(entries appended, a read between them, commit or roll back)."""


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_TRANSACTION, min_size=1, max_size=6))
def test_committed_appends_make_one_gapless_verified_chain(
        sessions: sessionmaker[UnitOfWork],
        transactions: list[tuple[int, bool, bool]]) -> None:
    expected = _size(sessions)
    for count, read, commit in transactions:
        with sessions() as work:
            appended = []
            for n in range(count):
                if read and n:
                    assert ledger_for(work).storage.size() == expected + n
                appended += record_many(work, [_entry(n)])
            assert [a.index for a in appended] == list(range(expected, expected + count))
            if commit:
                work.commit()
                expected += count
            else:
                work.rollback()
    assert _check_chain(sessions) == expected


@pytest.mark.postgres
@pytest.mark.parametrize("default", ["on", "off"])
def test_an_answered_append_is_on_disk_though_the_lock_went_before_the_flush(
        postgres_url: str, monkeypatch: pytest.MonkeyPatch, default: str) -> None:
    """Whatever the server's ``synchronous_commit`` (an operator may turn it off), the
    flush's own commit waits for the disk: the flush sets it on for its session."""
    if default == "off":
        admin = make_engine(postgres_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            name = conn.execute(text("SELECT current_database()")).scalar()
            conn.exec_driver_sql(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
        admin.dispose()
    flushed: list[str] = []
    flush = sqlpipeline.flush_wal

    def noted(conn: Connection) -> str:
        lsn = flush(conn)  # the real flush; its WAL position noted
        flushed.append(lsn)
        return lsn

    monkeypatch.setattr(sqlpipeline, "flush_wal", noted)
    engine = make_engine(postgres_url, poolclass=NullPool)
    try:
        sessions = make_session_factory(engine)
        with sessions() as work:
            record(work, _entry(0))
            work.commit()  # returns once the WAL past the entry's commit is on disk
        assert len(flushed) == 1
        with engine.connect() as conn:
            on_disk = conn.execute(text("SELECT pg_current_wal_flush_lsn() >= "
                                        "CAST(:lsn AS pg_lsn)"), {"lsn": flushed[0]}).scalar()
        assert on_disk is True
        with sessions() as work:
            work.commit()  # nothing appended: no flush of its own
        assert len(flushed) == 1
    finally:
        engine.dispose()
