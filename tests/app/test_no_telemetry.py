"""FastAPI's own OpenTelemetry stays off: no span of a Cadena request reaches any provider.

FastAPI 0.16x makes a span per request (path with its packet id, query,
status) for the process's tracer provider, and sets up an OTLP exporter when
``FASTAPI_OTEL_AUTO_CONFIGURE=true`` is in the environment. Another library
installing a provider, or a variable left in an operator's environment, must
not send a Cadena server's requests anywhere (docs/operations.md, Metrics).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry import trace

from tests.app.conftest import _world
from tests.conftest import fresh_database_url


class _Tracer(trace.Tracer):
    def __init__(self, names: list[str]) -> None:
        self.names = names

    def start_span(self, name: str, *args: Any, **kwargs: Any) -> trace.Span:
        self.names.append(name)
        return trace.INVALID_SPAN

    @contextmanager
    def _current(self, name: str) -> Iterator[trace.Span]:
        self.names.append(name)
        yield trace.INVALID_SPAN

    def start_as_current_span(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self._current(name)


class Recorder(trace.TracerProvider):
    """A tracer provider (the API's, no SDK) that keeps the name of every span started."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        return _Tracer(self.names)


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """A recording provider installed as the process's own, as another library would."""
    installed = Recorder()
    # The API sets its global provider once per process: the test swaps it back afterwards.
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", installed)
    return installed


def test_the_recorder_sees_a_plain_fastapi_apps_requests(recorder: Recorder) -> None:
    plain = FastAPI()

    @plain.get("/v1/packets/{packet_id}")
    def read(packet_id: str) -> dict[str, str]:
        return {"id": packet_id}

    with TestClient(plain) as client:
        assert client.get("/v1/packets/0190c6d8-aaaa").status_code == 200
    assert recorder.names  # what the next test would see if Cadena left it on


def test_no_cadena_request_makes_a_span(recorder: Recorder, monkeypatch: pytest.MonkeyPatch,
                                        request: pytest.FixtureRequest, tmp_path: Path) -> None:
    monkeypatch.setenv("FASTAPI_OTEL_AUTO_CONFIGURE", "true")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    world = _world(fresh_database_url("sqlite", request, tmp_path), tmp_path)
    try:
        w = next(world)  # starts the service (lifespan): auto-configuration would run here
        assert w.client.get("/healthz").status_code == 200
        auth = w.coordinator.auth
        missing = "/v1/packets/0190c6d8-0000-7000-8000-000000000000"
        answers = [w.client.get("/v1/packets", headers=auth).status_code,
                   w.client.get(missing, headers=auth).status_code,
                   w.client.get("/v1/packets", headers={"Authorization": "Bearer x"}).status_code]
        assert answers[2] == 401
        assert all(status < 500 for status in answers), answers
    finally:
        for _ in world:  # the rest of the fixture: the service stops
            pass
    assert recorder.names == []
