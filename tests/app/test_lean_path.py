"""The lean request path (issue 21): what a route costs besides its own work.

A synchronous dependency runs in a worker thread of its own, a second thread
hop per request; so no dependency of any route is one (docs/adr/0026). The
hot routes document their response models (kept by any leaner response).
Routes are matched one by one in the order the application lists them, so
the hot ones come first; that is safe only while no two top-level routes
answer the same method and path (docs/adr/0027).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from fastapi import APIRouter
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import BaseRoute, Match

from app.main import create_app
from app.settings import Settings


@pytest.fixture
def app_routes(tmp_path: Path) -> list[APIRoute]:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    app = create_app(Settings(data_dir=data, ledger_origin="test.cadena/ledger"))
    routes = list(_api_routes(app.routes))
    assert {"packet.submit", "packet.retrieve", "packet.list"} <= {r.name for r in routes}
    return routes


def _api_routes(routes: Sequence[BaseRoute]) -> Iterator[APIRoute]:
    """Every endpoint, into included routers (FastAPI 0.163 keeps them as routers)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        inner: APIRouter | None = getattr(route, "original_router", None)
        if inner is not None:
            yield from _api_routes(inner.routes)


def _dependencies(dependant: Dependant) -> Iterator[Dependant]:
    for sub in dependant.dependencies:
        yield sub
        yield from _dependencies(sub)


def test_no_route_has_a_dependency_that_needs_a_thread(app_routes: list[APIRoute]) -> None:
    synchronous = {
        f"{route.name}: {dep.call.__qualname__}"
        for route in app_routes for dep in _dependencies(route.dependant)
        if dep.call is not None and not (inspect.iscoroutinefunction(dep.call)
                                         or inspect.isasyncgenfunction(dep.call))}
    assert not synchronous


@pytest.mark.parametrize(("path", "method", "status", "model"), [
    ("/v1/packets", "post", "201", "PacketCreated"),
    ("/v1/packets", "get", "200", "PacketList"),
    ("/v1/packets/{packet_id}", "get", "200", "PacketRead"),
])
def test_hot_routes_still_document_their_response_model(
        tmp_path: Path, path: str, method: str, status: str, model: str) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    client = TestClient(create_app(Settings(data_dir=data, ledger_origin="test.cadena/ledger")))
    spec = client.get("/openapi.json").json()
    content = spec["paths"][path][method]["responses"][status]["content"]
    assert content["application/json"]["schema"] == {"$ref": f"#/components/schemas/{model}"}


def _example_path(template: str) -> str:
    """A concrete path for an OpenAPI path template (every parameter ``1``)."""
    return re.sub(r"\{[^}]+\}", "1", template)


def test_no_two_top_level_routes_answer_the_same_request(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    app = create_app(Settings(data_dir=data, ledger_origin="test.cadena/ledger"))
    paths = app.openapi()["paths"]
    ambiguous = {}
    for template, operations in paths.items():
        for method in operations:
            scope = {"type": "http", "method": method.upper(), "path": _example_path(template),
                     "root_path": "", "headers": [], "query_string": b"", "app": app}
            full = [route for route in app.router.routes
                    if route.matches(dict(scope))[0] == Match.FULL]
            if len(full) != 1:
                ambiguous[f"{method} {template}"] = len(full)
    assert len(paths) > 40
    assert not ambiguous


def test_the_hot_routes_are_matched_before_the_others(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    app = create_app(Settings(data_dir=data, ledger_origin="test.cadena/ledger"))
    included = [getattr(route, "original_router", None) for route in app.router.routes]
    first = next(route for route in included if route is not None)
    assert {r.name for r in first.routes if isinstance(r, APIRoute)} >= {
        "packet.submit", "packet.list", "packet.retrieve"}
    names = [getattr(route, "name", None) for route in app.router.routes]
    assert names.index("healthz") < included.index(first)
