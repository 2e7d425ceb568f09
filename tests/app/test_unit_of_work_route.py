"""``UnitOfWorkRoute``: authentication, endpoint and commit in the request's one thread."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated, Any

import anyio.to_thread
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from app.ledger.engine import make_engine
from app.ledger.route import SessionDep, UnitOfWorkRoute, _in_one_thread
from app.ledger.unit_of_work import UnitOfWork, make_session_factory


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
    assert session.settled


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


def _app_on(tmp_path: Path, route_class: type[APIRoute] = UnitOfWorkRoute) -> FastAPI:
    """An application with one table and the routes below, on a SQLite file."""
    engine = make_engine(f"sqlite:///{tmp_path / 'uow.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE note (body TEXT NOT NULL)"))
    app = FastAPI()
    app.state.sessions = make_session_factory(engine)
    app.state.engine = engine
    router = APIRouter(route_class=route_class)

    @router.post("/sync/{body}")
    def write_sync(body: str, session: SessionDep) -> dict[str, str]:
        session.execute(text("INSERT INTO note VALUES (:b)"), {"b": body})
        if body == "fail":
            raise LookupError("refused after writing")
        return {"body": body}

    @router.post("/async/{body}")
    async def write_async(body: str, session: SessionDep) -> dict[str, str]:
        await anyio.to_thread.run_sync(
            lambda: session.execute(text("INSERT INTO note VALUES (:b)"), {"b": body}))
        if body == "fail":
            raise LookupError("refused after writing")
        return {"body": body}

    app.include_router(router)
    return app


def _notes(app: FastAPI) -> list[str]:
    with app.state.engine.connect() as conn:
        return [row[0] for row in conn.execute(text("SELECT body FROM note ORDER BY body"))]


def _idle(app: FastAPI) -> bool:
    """No connection is out of the pool, and the pooled one holds no transaction."""
    engine = app.state.engine
    if engine.pool.checkedout() != 0:
        return False
    raw = engine.raw_connection()
    try:
        return not raw.driver_connection.in_transaction
    finally:
        raw.close()


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_the_route_commits_a_plain_session_dependency_and_hands_back_an_idle_connection(
        tmp_path: Path, kind: str) -> None:
    app = _app_on(tmp_path)
    with TestClient(app) as client:
        for body in ("a", "b"):
            assert client.post(f"/{kind}/{body}").status_code == 200
            assert _idle(app)
    assert _notes(app) == ["a", "b"]


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_an_endpoint_that_fails_after_writing_leaves_nothing_and_no_open_transaction(
        tmp_path: Path, kind: str) -> None:
    app = _app_on(tmp_path)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.post(f"/{kind}/fail").status_code == 500
        assert _idle(app)
        assert client.post(f"/{kind}/after").status_code == 200
    assert _notes(app) == ["after"]


def test_a_session_outside_a_unit_of_work_route_is_refused(tmp_path: Path) -> None:
    app = _app_on(tmp_path, route_class=APIRoute)
    with TestClient(app) as client, pytest.raises(TypeError, match="UnitOfWorkRoute"):
        client.post("/sync/a")
    assert _notes(app) == []


# -- the session given by the route, not solved by FastAPI (issue 21) ---------------------


def test_a_synchronous_endpoint_gets_its_session_from_the_route_not_the_solver(
        tmp_path: Path) -> None:
    """FastAPI solves no dependency for the session (it reads no parameter); the endpoint
    still gets one unit of work, with its request's context, and an endpoint that takes
    the request itself keeps it."""
    app = _app_on(tmp_path)
    router = APIRouter(route_class=UnitOfWorkRoute)
    seen: dict[str, Any] = {}

    @router.get("/both/{n}")
    def both(n: int, request: Request, session: SessionDep) -> dict[str, int]:
        seen.update(path=request.url.path, address=session.request and session.request.address,
                    unit_of_work=isinstance(session, UnitOfWork))
        return {"n": n}

    app.include_router(router)
    route = next(r for r in router.routes if getattr(r, "name", "") == "both")
    assert isinstance(route, APIRoute)
    assert [d.call for d in route.dependant.dependencies] == []
    assert "session" not in {p.name for p in route.dependant.query_params}
    with TestClient(app) as client:
        assert client.get("/both/7").json() == {"n": 7}
        assert client.post("/sync/a").status_code == 200
    assert seen == {"path": "/both/7", "address": "testclient", "unit_of_work": True}
    assert _notes(app) == ["a"]


def test_a_request_refused_on_its_parameters_makes_no_session(tmp_path: Path) -> None:
    app = _app_on(tmp_path)
    made: list[UnitOfWork] = []
    factory = app.state.sessions

    def counting() -> UnitOfWork:
        made.append(factory())
        return made[-1]

    app.state.sessions = counting
    router = APIRouter(route_class=UnitOfWorkRoute)

    @router.get("/number/{n}")
    def number(n: int, session: SessionDep) -> int:
        return n

    app.include_router(router)
    with TestClient(app) as client:
        assert client.get("/number/x").status_code == 422
        assert made == []
        assert client.get("/number/3").json() == 3
    assert len(made) == 1


def _helper(session: SessionDep) -> str:
    return "x"


def _endpoint_with_a_helper(value: Annotated[str, Depends(_helper)], session: SessionDep) -> str:
    return value


def test_a_dependency_that_takes_a_session_is_refused_when_the_route_is_made() -> None:
    """The route gives the session to its endpoint: a dependency solved by FastAPI would
    get a second unit of work, another transaction."""
    with pytest.raises(TypeError, match="dependency takes a SessionDep"):
        UnitOfWorkRoute("/x", _endpoint_with_a_helper)
