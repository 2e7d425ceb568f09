"""The operations port: health, checkpoint and key on a loop of their own (app/ops.py)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from app.ops import OpsListener
from tests.reliability.harness import free_port

NOTE = "test.cadena/ledger\n3\nAAAA\n\n— test.cadena/ledger AAAA\n"


@pytest.fixture
def ops() -> Iterator[tuple[str, list[int]]]:
    refreshed: list[int] = []
    notes: list[str | None] = [None]

    def refresh() -> None:
        refreshed.append(1)
        notes[0] = NOTE

    port = free_port()
    listener = OpsListener("127.0.0.1", port, checkpoint=lambda: notes[0],
                           key=lambda: "test.cadena/ledger+abcd+AAAA\n", refresh=refresh,
                           interval=0.05)
    listener.start()
    try:
        yield f"http://127.0.0.1:{port}", refreshed
    finally:
        listener.stop()


def test_health_answers_on_the_operations_port(ops: tuple[str, list[int]]) -> None:
    response = httpx.get(ops[0] + "/healthz", timeout=5)
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
    assert response.headers["connection"] == "close"


def test_the_checkpoint_is_refreshed_in_the_background_and_served(
        ops: tuple[str, list[int]]) -> None:
    url, refreshed = ops
    for _ in range(100):
        if refreshed:
            break
        httpx.get(url + "/healthz", timeout=5)
    response = httpx.get(url + "/v1/ledger/checkpoint", timeout=5)
    assert (response.status_code, response.text) == (200, NOTE)
    assert httpx.get(url + "/v1/ledger/key", timeout=5).text.endswith("+AAAA\n")


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/v1/states", 404), ("POST", "/healthz", 405), ("GET", "/", 404)])
def test_nothing_else_is_served(ops: tuple[str, list[int]], method: str, path: str,
                                status: int) -> None:
    response = httpx.request(method, ops[0] + path, timeout=5)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
