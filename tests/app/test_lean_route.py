"""The lean route application (app.ledger.lean, ADR 0042) answers as FastAPI's handling does.

A unit-of-work route is served by a plan of its dependencies made once, and
the hot routes are found by method and path before the router walks its
routes. Each test here compares with FastAPI's own handling, which the same
application still uses when it overrides a dependency: the same status,
media type and body (but for where the ledger recorded the request), for
well-formed and malformed requests alike.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
from fastapi import APIRouter, BackgroundTasks, Depends, FastAPI, Response
from fastapi.dependencies.utils import request_params_to_args
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.datastructures import QueryParams

from app.ledger import HotRoutes, SessionDep, UnitOfWorkRoute, as_included
from app.ledger.lean import Params, plan_of
from app.main import HOT_ROUTES
from tests.app.conftest import Person, World, _world
from tests.app.test_packets_support import make_channel, seal, submit

PER_TEST = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
LEDGER_KEYS = {"ledger", "ledger_index", "ledger_leaf_hash", "ledger_summary"}


@pytest.fixture
def lean_world(db_url: str, tmp_path: Path) -> Iterator[World]:
    """A service whose submission rate limit a property test does not reach."""
    yield from _world(db_url, tmp_path, rate_submit_per_minute=1_000_000)


def _never() -> None:
    """A dependency no route has: overriding it makes FastAPI serve every route."""


def _hot(app: FastAPI) -> dict[str, Any]:
    """The hot routes as the application includes them (FastAPI's object per inclusion)."""
    stack = app.router.middleware_stack
    assert isinstance(stack, HotRoutes)
    found = {**stack.exact, **stack.under}.values()
    assert all(isinstance(route.original_route, UnitOfWorkRoute) for route in found)
    return {route.name: route for route in found}


def _people(world: World) -> tuple[Person, Person]:
    world.state("MX")
    world.state("PE")
    alice = world.liaison("alice", "MX")
    bob = world.liaison("bob", "PE")
    make_channel(world, "ch-lean", [alice, bob])
    return alice, bob


def _comparable(response: httpx.Response) -> tuple[int, str, Any]:
    kind = response.headers.get("content-type", "")
    try:
        body: Any = response.json()
    except ValueError:
        return response.status_code, kind, response.content
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k not in LEDGER_KEYS}
    return response.status_code, kind, body


def _both(world: World, method: str, url: str, **kwargs: Any) -> tuple[Any, Any]:
    """The answer of the lean application, then FastAPI's, to the same request."""
    lean = world.client.request(method, url, **kwargs)
    app = world.client.app
    assert isinstance(app, FastAPI)
    app.dependency_overrides[_never] = _never
    try:
        full = world.client.request(method, url, **kwargs)
    finally:
        app.dependency_overrides.clear()
    return _comparable(lean), _comparable(full)


def test_the_hot_routes_are_served_by_their_lean_application(lean_world: World) -> None:
    app = lean_world.client.app
    assert isinstance(app, FastAPI)
    hot = _hot(app)
    assert set(hot) == set(HOT_ROUTES)
    served: list[str] = []
    originals = {name: route.lean for name, route in hot.items()}
    for name, route in hot.items():
        lean = route.lean
        assert lean is not None, f"{name} has no lean application"

        async def counted(scope: Any, receive: Any, send: Any, lean: Any = lean,
                          name: str = name) -> None:
            served.append(name)
            await lean(scope, receive, send)

        route.lean = counted
    try:
        alice, _ = _people(lean_world)
        assert lean_world.client.get("/v1/packets", headers=alice.auth).status_code == 200
        assert lean_world.client.get("/v1/packets/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
                                     headers=alice.auth).status_code == 404
        assert lean_world.client.post("/v1/packets", headers=alice.auth,
                                      json={}).status_code == 422
    finally:
        for name, route in hot.items():
            route.lean = originals[name]
    assert served.count("packet.list") == 1
    assert served.count("packet.retrieve") == 1
    assert served.count("packet.submit") == 1


@PER_TEST
@given(query=st.lists(st.tuples(
    st.sampled_from(["box", "channel", "case_reference", "since", "until", "status", "limit",
                     "cursor", "other"]),
    st.one_of(st.sampled_from(["inbox", "sent", "outbox", "", "0", "1", "200", "201", "-1",
                               "active", "withdrawn", "2026-01-01T00:00:00Z", "2026-01-01",
                               "0001-01-01T00:00:00+14:00", "ch-lean", "a" * 300, "x\u202e"]),
              st.text(max_size=12))), max_size=6))
def test_a_listing_is_answered_as_fastapi_answers_it(lean_world: World,
                                                     query: list[tuple[str, str]]) -> None:
    people = lean_world.people or dict(zip(("alice", "bob"), _people(lean_world), strict=True))
    lean, full = _both(lean_world, "GET", "/v1/packets?" + urlencode(query),
                       headers=people["alice"].auth)
    assert lean == full


@PER_TEST
@given(packet=st.one_of(
    st.uuids(version=4).map(str), st.uuids().map(lambda u: str(u)[:14] + "7" + str(u)[15:]),
    st.text(alphabet="0123456789abcdefABCDEF-xyz%._~", min_size=1, max_size=40)),
    bearer=st.sampled_from(["alice", "none", "garbage"]))
def test_a_retrieval_is_answered_as_fastapi_answers_it(lean_world: World, packet: str,
                                                       bearer: str) -> None:
    if not lean_world.people:
        alice, bob = _people(lean_world)
        assert submit(lean_world, alice, seal(alice, [bob], "ch-lean")).status_code == 201
    headers = {"alice": lean_world.people["alice"].auth, "none": {},
               "garbage": {"Authorization": "Bearer cadena.x.y"}}[bearer]
    lean, full = _both(lean_world, "GET", "/v1/packets/" + quote(packet, safe=""),
                       headers=headers)
    assert lean == full


def test_a_packet_is_retrieved_alike(lean_world: World) -> None:
    alice, bob = _people(lean_world)
    sealed = seal(alice, [bob], "ch-lean")
    created = submit(lean_world, alice, sealed)
    assert created.status_code == 201, created.text
    url = f"/v1/packets/{created.json()['id']}"
    lean, full = _both(lean_world, "GET", url, headers=bob.auth)
    assert lean == full
    assert lean[0] == 200
    assert lean[2]["wrapped_key"]
    lean, full = _both(lean_world, "GET", url, headers=alice.auth)
    assert lean == full
    head_lean = lean_world.client.head(url, headers=bob.auth)
    app = lean_world.client.app
    assert isinstance(app, FastAPI)
    app.dependency_overrides[_never] = _never
    try:
        head_full = lean_world.client.head(url, headers=bob.auth)
    finally:
        app.dependency_overrides.clear()
    # FastAPI's routes take only the methods they name: HEAD is not GET's
    assert head_lean.status_code == head_full.status_code == 405
    assert head_lean.headers.get("allow") == head_full.headers.get("allow")


def _nested(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8), _nested,
                     max_leaves=8)


@PER_TEST
@given(body=st.one_of(
    st.binary(max_size=40),
    _JSON.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"envelope": st.one_of(st.text(max_size=12), st.integers(),
                                                 st.sampled_from(["AAAA", "AAA=", "====",
                                                                  "eyJ2IjoxfQ=="]))},
                          optional={"inline_streams": _JSON, "extra": _JSON}
                          ).map(lambda v: json.dumps(v).encode())),
    content_type=st.sampled_from(["application/json", "", "text/plain",
                                  "application/merge-patch+json", "application/json; charset=x",
                                  "multipart/form-data"]))
def test_a_malformed_submission_is_refused_as_fastapi_refuses_it(
        lean_world: World, body: bytes, content_type: str) -> None:
    people = lean_world.people or dict(zip(("alice", "bob"), _people(lean_world), strict=True))
    headers = {**people["alice"].auth, **({"Content-Type": content_type} if content_type else {})}
    lean, full = _both(lean_world, "POST", "/v1/packets", content=body, headers=headers)
    assert lean == full
    assert lean[0] >= 400


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/v1/packets/"), ("HEAD", "/v1/packets"), ("PUT", "/v1/packets"),
    ("POST", "/v1/packets/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"),
    ("GET", "/v1/packets/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b/streams/0"),
    ("GET", "/v1/packets/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b/receipts"),
    ("DELETE", "/v1/packets/x"), ("GET", "/v1/packetsx"),
])
def test_what_the_hot_routes_do_not_match_goes_to_the_router(sqlite_world: World, method: str,
                                                             path: str) -> None:
    app = sqlite_world.client.app
    assert isinstance(app, FastAPI)
    headers = sqlite_world.coordinator.auth
    hot = app.router.middleware_stack
    assert isinstance(hot, HotRoutes)
    first = sqlite_world.client.request(method, path, headers=headers, follow_redirects=False)
    app.router.middleware_stack = hot.fallback
    try:
        routed = sqlite_world.client.request(method, path, headers=headers,
                                             follow_redirects=False)
    finally:
        app.router.middleware_stack = hot
    assert _comparable(first) == _comparable(routed)
    assert first.headers.get("allow") == routed.headers.get("allow")


@PER_TEST
@given(query=st.lists(st.tuples(st.sampled_from(["box", "limit", "since", "status", "cursor",
                                                 "channel", "case_reference", "zz"]),
                                st.text(max_size=10)), max_size=8))
def test_parameters_are_read_as_fastapi_reads_them(sqlite_world: World,
                                                   query: list[tuple[str, str]]) -> None:
    app = sqlite_world.client.app
    assert isinstance(app, FastAPI)
    hot = _hot(app)
    dependant = hot["packet.list"].dependant.dependencies[0]
    fields = dependant.query_params
    planned = Params.of(fields)
    assert planned.simple is not None  # every listing parameter is read by the plan
    given_params = QueryParams(urlencode(query))
    values: dict[str, Any] = {}
    errors: list[Any] = []
    planned.read(given_params, values, errors)
    expected_values, expected_errors = request_params_to_args(fields, given_params)
    assert values == expected_values
    # An error's context holds the exception raised, equal only to itself: compared as text.
    assert json.dumps(errors, default=repr) == json.dumps(expected_errors, default=repr)


def test_a_route_is_served_with_the_dependencies_its_inclusion_adds() -> None:
    calls: list[str] = []

    async def extra() -> None:
        calls.append("extra")

    router = APIRouter(route_class=UnitOfWorkRoute)

    @router.get("/thing/{n}")
    def thing(n: int) -> dict[str, int]:
        calls.append("thing")
        return {"n": n}

    app = FastAPI()
    app.include_router(router, prefix="/v9", dependencies=[Depends(extra)])
    route = router.routes[0]
    assert isinstance(route, UnitOfWorkRoute)
    assert route.lean is not None
    included = [r for r in as_included(app.router.routes) if r.name == "thing"]
    assert len(included) == 1
    assert included[0].lean is not None
    assert included[0].lean is not route.lean
    with TestClient(app) as client:
        assert client.get("/v9/thing/7").json() == {"n": 7}
        assert calls == ["extra", "thing"]
        assert client.get("/v9/thing/x").status_code == 422
        assert calls == ["extra", "thing", "extra"]


def test_a_dependency_needing_what_a_plan_leaves_out_gets_no_plan() -> None:
    router = APIRouter(route_class=UnitOfWorkRoute)

    @router.get("/tasks")
    def tasks(session: SessionDep, background: BackgroundTasks) -> dict[str, str]:
        return {}

    @router.get("/answer")
    def answer(session: SessionDep, response: Response) -> dict[str, str]:
        return {}

    def sync_dependency() -> int:
        return 1

    @router.get("/sync")
    def sync(session: SessionDep, n: int = Depends(sync_dependency)) -> dict[str, str]:
        return {}

    for route in router.routes:
        assert isinstance(route, UnitOfWorkRoute)
        assert route.lean is None, route.path
        assert plan_of(route.dependant) is None, route.path
