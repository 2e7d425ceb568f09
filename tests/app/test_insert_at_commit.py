"""Rows queued for the commit (``UnitOfWork.insert_at_commit``): committed with it or not.

On PostgreSQL they travel with ``COMMIT`` in one round trip; on SQLite they
are inserted just before it. Either way a rollback drops them, an ORM query
in the same transaction sees them, and a row the database refuses at commit
leaves nothing of the transaction behind.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import bindparam, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import NullPool

from app.ledger.engine import make_engine
from app.ledger.unit_of_work import UnitOfWork, insert_at_commit, make_session_factory
from app.models.certificate import LedgerSubject

_COLUMNS = ("subject_type", "subject_id", "ledger_index", "action")
_INSERT = insert(LedgerSubject).values({c: bindparam(c) for c in _COLUMNS})


def _row(index: int) -> dict[str, object]:
    return {"subject_type": "packet", "subject_id": "p1", "ledger_index": index,
            "action": "packet.retrieve"}


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[UnitOfWork]]:
    """Sessions on a fresh migrated database (SQLite and PostgreSQL)."""
    engine = make_engine(db_url, poolclass=NullPool)
    yield make_session_factory(engine)
    engine.dispose()


def _stored(sessions: sessionmaker[UnitOfWork]) -> list[int]:
    with sessions() as session:
        return list(session.scalars(select(LedgerSubject.ledger_index)
                                    .order_by(LedgerSubject.ledger_index)))


def test_queued_rows_are_committed_with_the_transaction(
        sessions: sessionmaker[UnitOfWork]) -> None:
    with sessions() as session:
        insert_at_commit(session, _INSERT, [_row(1), _row(2)])
        insert_at_commit(session, _INSERT, [_row(3)])
        assert _stored(sessions) == []  # not yet
        session.commit()
    assert _stored(sessions) == [1, 2, 3]


def test_a_rollback_drops_the_queued_rows(sessions: sessionmaker[UnitOfWork]) -> None:
    with sessions() as session:
        insert_at_commit(session, _INSERT, [_row(1)])
        session.rollback()
        insert_at_commit(session, _INSERT, [_row(2)])
        session.commit()
    assert _stored(sessions) == [2]


def test_an_orm_query_in_the_transaction_reads_the_queued_rows(
        sessions: sessionmaker[UnitOfWork]) -> None:
    with sessions() as session:
        insert_at_commit(session, _INSERT, [_row(7)])
        assert list(session.scalars(select(LedgerSubject.ledger_index))) == [7]
        session.commit()
    assert _stored(sessions) == [7]


def test_a_queued_row_refused_at_commit_leaves_nothing(sessions: sessionmaker[UnitOfWork]) -> None:
    with sessions() as session:
        session.add(LedgerSubject(**_row(1)))
        session.flush()
        insert_at_commit(session, _INSERT, [_row(2), _row(2)])  # the same key twice
        with pytest.raises(IntegrityError):
            session.commit()
        session.rollback()
        insert_at_commit(session, _INSERT, [_row(3)])
        session.commit()  # the session is usable again
    assert _stored(sessions) == [3]
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(LedgerSubject)) == 1
