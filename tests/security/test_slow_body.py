"""A request body must keep coming (app.admission, DESIGN invariant 9).

A body that stalls for ``body_idle_timeout_seconds``, or trickles under
``upload_min_bytes_per_second`` once ``upload_rate_grace_seconds`` have
passed, ends its request with 408 ``request-timeout`` and ``Connection:
close``; nothing is kept. The requests are driven straight into the
application on the test client's own event loop, so that a body can be made
to stall between two of its chunks.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.app.conftest import World, _world
from tests.app.test_packets_support import ledger_size

IDLE = 0.4


@pytest.fixture
def slow_world(db_url: str, tmp_path: Path) -> Iterator[World]:
    """A service whose body timeouts a test can wait out."""
    yield from _world(db_url, tmp_path, body_idle_timeout_seconds=IDLE,
                      upload_rate_grace_seconds=0.3, upload_min_bytes_per_second=100_000)


def _post(world: World, chunks: list[tuple[float, bytes]], declared: int, *,
          complete: bool = False) -> tuple[list[dict[str, Any]], float]:
    """POST /v1/packets with ``chunks`` (each after its delay), the last one ending the
    body if ``complete`` (else the body stalls after it); the messages sent back and the
    seconds the request took."""
    auth = world.coordinator.auth["Authorization"].encode()
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/v1/packets", "raw_path": b"",
             "root_path": "", "query_string": b"", "client": ("127.0.0.9", 5000),
             "server": ("testserver", 80),
             "headers": [(b"host", b"testserver"), (b"authorization", auth),
                         (b"content-type", b"application/json"),
                         (b"content-length", str(declared).encode())]}
    sent: list[dict[str, Any]] = []

    async def run() -> float:
        pending = list(chunks)

        async def receive() -> dict[str, Any]:
            if not pending:
                await asyncio.sleep(3600)  # the body stalls: only a timeout ends this
            delay, data = pending.pop(0)
            await asyncio.sleep(delay)
            return {"type": "http.request", "body": data,
                    "more_body": not (complete and not pending)}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        began = time.monotonic()
        await world.client.app(scope, receive, send)  # type: ignore[arg-type]
        return time.monotonic() - began

    portal = world.client.portal
    assert portal is not None
    took = portal.call(run)
    return sent, took


def _answer(sent: list[dict[str, Any]]) -> tuple[int, dict[bytes, bytes], dict[str, Any]]:
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), json.loads(body)


def test_a_stalled_body_is_answered_408_and_changes_nothing(slow_world: World) -> None:
    before = ledger_size(slow_world)
    sent, took = _post(slow_world, [(0.0, b'{"envelope": "')], declared=1000)
    status, headers, problem = _answer(sent)
    assert status == 408
    assert problem["type"].endswith("/request-timeout")
    assert headers[b"connection"] == b"close"
    assert IDLE <= took < IDLE + 5
    assert ledger_size(slow_world) == before


def test_a_trickling_body_is_answered_408(slow_world: World) -> None:
    trickle = [(0.05, b" ") for _ in range(40)]  # 20 bytes a second, for up to two seconds
    sent, took = _post(slow_world, trickle, declared=1000)
    status, _, problem = _answer(sent)
    assert status == 408
    assert problem["type"].endswith("/request-timeout")
    assert took < 1.5  # past the 0.3 s of grace, not when the 40 chunks were all sent


def test_a_body_that_keeps_coming_is_served(slow_world: World) -> None:
    body = b'{"envelope": "AAAA"}'
    chunks = [(0.02, body[i:i + 5]) for i in range(0, len(body), 5)]
    sent, _ = _post(slow_world, chunks, declared=len(body), complete=True)
    status, _, problem = _answer(sent)
    # read whole and answered by the route: a coordinator may not submit packets
    assert status == 403
    assert not problem["type"].endswith("/request-timeout")
