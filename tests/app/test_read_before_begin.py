"""On PostgreSQL a transaction's reads before its first write send no ``BEGIN`` (issue 21).

``DriverQuery`` runs a plain read on a connection that has not begun its
transaction in autocommit (``ledger.sql.pipeline.read_before_begin``): the
``BEGIN`` goes with the first write, and a transaction that only reads sends
neither ``BEGIN`` nor ``COMMIT``. What must not change: the writes after such
reads are one transaction (a rollback keeps none of them), a failed read
leaves the connection as it was, and a session at a stricter isolation level,
or a read that locks, begins the transaction as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import pq
from sqlalchemy import (
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    delete,
    insert,
    literal_column,
    select,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.ledger.engine import make_engine
from app.ledger.sqlread import DriverQuery
from app.ledger.unit_of_work import make_session_factory

pytestmark = pytest.mark.postgres

NOTES = Table("read_before_begin_notes", MetaData(),
              Column("id", Integer, primary_key=True, autoincrement=False),
              Column("text", String(40), nullable=False))
"""A table of this test's own (made in its own database, before the serving engine's use)."""
READ = DriverQuery(select(NOTES.c.id, NOTES.c.text).where(NOTES.c.id >= bindparam("low")))
LOCKING = DriverQuery(select(NOTES.c.id).where(NOTES.c.id >= bindparam("low")).with_for_update())
FAILING = DriverQuery(select((literal_column("1") / bindparam("zero", type_=Integer()))
                             .label("never")))
"""Fails as it runs (division by zero), after the statement was sent."""


@pytest.fixture
def engine(postgres_url: str) -> Iterator[Engine]:
    """The serving engine's kind (prepared statements kept), on a database with NOTES."""
    maker = make_engine(postgres_url)
    with maker.begin() as conn:
        NOTES.create(conn)
    maker.dispose()
    engine = make_engine(postgres_url, keep_prepared=True)
    yield engine
    engine.dispose()


def _status(session: Session) -> pq.TransactionStatus:
    raw: Any = session.connection().connection.dbapi_connection
    assert raw.autocommit is False  # never left on
    return pq.TransactionStatus(raw.pgconn.transaction_status)


def _stored(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return sorted(conn.execute(select(NOTES.c.id)).scalars())


def test_a_transaction_that_only_reads_sends_no_begin_nor_commit(engine: Engine) -> None:
    session = make_session_factory(engine)()
    try:
        assert READ.all(session.connection(), {"low": 0}) == []
        assert _status(session) == pq.TransactionStatus.IDLE  # no BEGIN went
        session.commit()
        assert _status(session) == pq.TransactionStatus.IDLE
    finally:
        session.close()


OPS = st.lists(st.sampled_from(["read", "write"]), min_size=1, max_size=8)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS, commit=st.booleans())
def test_writes_after_reads_alone_are_one_transaction(
        engine: Engine, ops: list[str], commit: bool) -> None:
    with engine.begin() as conn:
        conn.execute(delete(NOTES))
    session = make_session_factory(engine)()
    written: list[int] = []
    try:
        for n, op in enumerate(ops):
            if op == "read":
                assert [row.id for row in READ.all(session.connection(), {"low": 0})] == written
                expected = (pq.TransactionStatus.INTRANS if written
                            else pq.TransactionStatus.IDLE)
                assert _status(session) == expected
            else:
                session.execute(insert(NOTES).values(id=n, text=f"note {n}"))
                written.append(n)
        if commit:
            session.commit()
        else:
            session.rollback()
    finally:
        session.close()
    assert _stored(engine) == (written if commit else [])


def test_a_failed_read_alone_leaves_the_connection_transactional(engine: Engine) -> None:
    factory = make_session_factory(engine)
    session = factory()
    try:
        with pytest.raises(DBAPIError):
            FAILING.first(session.connection(), {"zero": 0})
        assert _status(session) == pq.TransactionStatus.IDLE
        session.execute(insert(NOTES).values(id=1, text="after the failure"))
        session.rollback()  # the insert was in a transaction: gone
    finally:
        session.close()
    assert _stored(engine) == []


def test_a_stricter_isolation_level_begins_at_the_first_read(engine: Engine) -> None:
    strict = engine.execution_options(isolation_level="REPEATABLE READ")
    session = make_session_factory(strict)()
    try:
        READ.all(session.connection(), {"low": 0})
        assert _status(session) == pq.TransactionStatus.INTRANS  # its snapshot starts here
    finally:
        session.close()


def test_a_read_that_locks_begins_the_transaction(engine: Engine) -> None:
    session = make_session_factory(engine)()
    try:
        LOCKING.all(session.connection(), {"low": 0})
        assert _status(session) == pq.TransactionStatus.INTRANS  # its locks last until the end
    finally:
        session.close()
