"""``UnitOfWorkRoute``: authentication, endpoint and commit in the request's one thread."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from app.ledger.route import UnitOfWorkRoute, _in_one_thread
from app.ledger.unit_of_work import UnitOfWork


class Recorder:
    """A deferred dependency that notes the thread and the transaction it was resolved in."""

    def __init__(self) -> None:
        self.thread: int | None = None

    def resolve(self, session: Session) -> str:
        self.thread = threading.get_ident()
        session.execute(text("SELECT 1"))
        return "principal"


def test_deferred_endpoint_and_commit_share_one_thread_and_one_transaction() -> None:
    session = UnitOfWork(create_engine("sqlite://"))
    deferred = Recorder()
    seen: dict[str, Any] = {}

    def endpoint(session: Session, by: str) -> str:
        seen.update(by=by, thread=threading.get_ident(), open=session.in_transaction())
        return "done"

    assert _in_one_thread(endpoint)(session=session, by=deferred) == "done"
    assert seen == {"by": "principal", "thread": deferred.thread, "open": True}
    assert not session.in_transaction()
    assert session.settled


def test_an_endpoint_that_raises_is_rolled_back_in_its_thread() -> None:
    session = UnitOfWork(create_engine("sqlite://"))

    def endpoint(session: Session) -> str:
        session.execute(text("SELECT 1"))
        raise LookupError("refused")

    with pytest.raises(LookupError):
        _in_one_thread(endpoint)(session=session)
    assert not session.in_transaction()
    assert session.settled  # get_session then only closes it


def test_a_deferred_dependency_without_a_session_is_a_programming_error() -> None:
    def endpoint(by: str) -> str:
        return by

    with pytest.raises(TypeError, match="SessionDep"):
        _in_one_thread(endpoint)(by=Recorder())


def test_coroutine_endpoints_resolve_first_then_run_on_the_event_loop() -> None:
    async def endpoint() -> str:
        return "async"

    route = UnitOfWorkRoute("/x", endpoint)
    assert route.endpoint is not endpoint
    assert route.endpoint.__wrapped__ is endpoint  # type: ignore[attr-defined]
