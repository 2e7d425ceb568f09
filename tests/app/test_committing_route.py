"""``CommittingRoute``: a synchronous endpoint's transaction ends in its own thread."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from app.deps import CommittingRoute, _committing


def test_the_session_is_committed_when_the_endpoint_returns() -> None:
    session = Session(create_engine("sqlite://"))
    session.execute(text("SELECT 1"))

    def endpoint(session: Session) -> str:
        assert session.in_transaction()
        return "done"

    assert _committing(endpoint)(session=session) == "done"
    assert not session.in_transaction()


def test_an_endpoint_that_raises_leaves_the_transaction_to_the_session_dependency() -> None:
    session = Session(create_engine("sqlite://"))
    session.execute(text("SELECT 1"))

    def endpoint(session: Session) -> str:
        raise LookupError("refused")

    with pytest.raises(LookupError):
        _committing(endpoint)(session=session)
    assert session.in_transaction()  # get_session rolls back and records the refusal
    session.rollback()


def test_coroutine_endpoints_are_left_as_they_are() -> None:
    async def endpoint() -> str:
        return "async"

    assert CommittingRoute("/x", endpoint).endpoint is endpoint
