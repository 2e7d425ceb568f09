"""The ledger kernel (``app.ledger``): one unit of work, proofs under the trust rule.

DESIGN invariant 2 has one room: an access is recorded only through a
``UnitOfWork``, and features get proofs only against a signed checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from nacl.signing import SigningKey
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from app.ledger import (
    UnitOfWork,
    draft,
    inclusion_proofs,
    ledger_for,
    make_engine,
    make_session_factory,
    record_many,
    transaction,
)
from ledger import InclusionProofError, NoteSigner, StoredCheckpoint, merkle

ORIGIN = "test.cadena/ledger"
SIGNER = NoteSigner(ORIGIN, SigningKey(bytes(32)))


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[UnitOfWork]]:
    """Units of work on a fresh migrated database (SQLite and PostgreSQL)."""
    engine = make_engine(db_url, poolclass=NullPool)
    yield make_session_factory(engine)
    engine.dispose()


def _append(sessions: sessionmaker[UnitOfWork], count: int) -> None:
    with transaction(sessions) as session:
        record_many(session, [draft(None, "test.append", {"type": "packet", "id": f"p{i}"})
                              for i in range(count)])


def test_a_session_that_is_not_a_unit_of_work_cannot_record() -> None:
    with Session(create_engine("sqlite://")) as session, pytest.raises(TypeError):
        record_many(session, [draft(None, "test.append", {"type": "packet", "id": "p"})])


def test_proofs_are_given_against_a_signed_checkpoint(
        sessions: sessionmaker[UnitOfWork]) -> None:
    _append(sessions, 5)
    with transaction(sessions) as session:
        stored = ledger_for(session).checkpoint(SIGNER, ORIGIN)
    assert stored is not None
    with transaction(sessions) as session:
        proofs = inclusion_proofs(session, [4, 0, 2], stored)
        storage = ledger_for(session).storage
        assert proofs == {i: merkle.inclusion_proof(storage, i, 5) for i in (0, 2, 4)}


def test_no_proof_against_a_size_no_checkpoint_has(
        sessions: sessionmaker[UnitOfWork]) -> None:
    _append(sessions, 4)
    unsigned = StoredCheckpoint(size=4, root=bytes(32), note="")
    with transaction(sessions) as session, pytest.raises(InclusionProofError,
                                                         match="trust rule"):
        inclusion_proofs(session, [1], unsigned)
