"""A hostile client's burst: every request is answered, at once or with a clear refusal.

One liaison opens 400 concurrent authenticated requests, 100 event streams and
50 uploads that trickle one byte at a time, against one real server process
(SQLite and PostgreSQL). Every request must get an answer: 2xx, or an
immediate 429 (a per-liaison or per-address bound) or 503 (the process is
full); ``/healthz`` and the public checkpoint answer throughout; slow uploads
are cut off; nothing is lost and the ledger verifies afterwards. The probes
run against the API port and the operations port (``app/ops.py``).

A correctness test, bounded generously in time: the latency targets live in
``bench/api.py --phases burst``.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from app.ledger.summaries import SUMMARY_ACTION
from tests.conftest import fresh_database_url
from tests.reliability.harness import (
    Server,
    ServerConfig,
    enrol_cast,
    free_port,
    new_coordinator,
    read_entries,
    run_cli,
)

REQUESTS = 400
STREAMS = 100
SLOW_UPLOADS = 50
# Generous on purpose: the defect was a 30 s stall (pool_timeout) on every
# request and every probe; a 10 s bound catches it on a shared, noisy 2-core
# machine without timing the server. The latency targets (p99 of a refusal and
# of a probe) are printed by ``bench/api.py --burst-only``.
REFUSED_AT_ONCE = 10.0  # seconds: a 429/503 must come without a stall
PROBE_LIMIT = 10.0  # seconds: the longest /healthz answer during the burst


@dataclass
class Outcomes:
    """What each kind of request got: statuses and the slowest refusal."""

    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    slowest_refusal: float = 0.0
    slowest_probe: dict[str, float] = field(default_factory=dict)
    failures_if_slow: str = ""
    failures: list[str] = field(default_factory=list)

    def saw(self, kind: str, status: int, elapsed: float) -> None:
        """Count one answer; refusals must be immediate."""
        self.statuses.setdefault(kind, Counter())[status] += 1
        if status in (429, 503) and elapsed > self.slowest_refusal:
            self.slowest_refusal = elapsed
            self.failures_if_slow = f"{kind} {status} after {elapsed:.1f} s"


async def _request(http: httpx.AsyncClient, auth: dict[str, str], out: Outcomes) -> None:
    began = time.monotonic()
    try:
        response = await http.get("/v1/states", headers=auth)
    except httpx.HTTPError as exc:
        out.failures.append(f"request: {type(exc).__name__}")
        return
    out.saw("request", response.status_code, time.monotonic() - began)


async def _stream(http: httpx.AsyncClient, auth: dict[str, str], out: Outcomes) -> None:
    began = time.monotonic()
    try:
        async with http.stream("GET", "/v1/events", headers=auth) as response:
            out.saw("stream", response.status_code, time.monotonic() - began)
            if response.status_code == 200:
                await asyncio.sleep(2)
    except httpx.HTTPError as exc:
        out.failures.append(f"stream: {type(exc).__name__}")


async def _trickle() -> AsyncIterator[bytes]:
    for _ in range(60):  # at most 30 s: the server must cut it off long before
        yield b"x"
        await asyncio.sleep(0.5)


async def _slow_upload(http: httpx.AsyncClient, auth: dict[str, str], n: int,
                       out: Outcomes) -> None:
    began = time.monotonic()
    digest = hashlib.sha256(f"slow {n}".encode()).hexdigest()
    try:
        response = await http.put(f"/v1/blobs/{digest}", headers=auth, content=_trickle())
    except httpx.HTTPError as exc:
        # A server that cuts a trickling upload off may close the connection
        # before the client has sent its last byte; that is an answer too.
        if isinstance(exc, httpx.RemoteProtocolError | httpx.WriteError | httpx.ReadError):
            out.saw("upload", 0, time.monotonic() - began)
        else:
            out.failures.append(f"upload: {type(exc).__name__} after "
                                f"{time.monotonic() - began:.1f} s")
        return
    out.saw("upload", response.status_code, time.monotonic() - began)


async def _probe(http: httpx.AsyncClient, label: str, url: str, stop: asyncio.Event,
                 out: Outcomes) -> None:
    while not stop.is_set():
        began = time.monotonic()
        try:
            response = await http.get(url, timeout=10)
            status = response.status_code
        except httpx.HTTPError as exc:
            out.failures.append(f"{label}: {type(exc).__name__}")
            status = -1
        elapsed = time.monotonic() - began
        out.slowest_probe[label] = max(out.slowest_probe.get(label, 0.0), elapsed)
        out.saw(label, status, elapsed)
        await asyncio.sleep(0.05)


async def _burst(base_url: str, ops_url: str, auth: dict[str, str]) -> Outcomes:
    out = Outcomes()
    limits = httpx.Limits(max_connections=REQUESTS + STREAMS + SLOW_UPLOADS + 10,
                          max_keepalive_connections=0)
    stop = asyncio.Event()
    async with httpx.AsyncClient(base_url=base_url, timeout=45, limits=limits) as http, \
            httpx.AsyncClient(base_url=base_url) as probe_http:
        probes = [asyncio.create_task(_probe(probe_http, f"{where}{path}", f"{url}{path}",
                                             stop, out))
                  for where, url in (("", base_url), ("ops:", ops_url))
                  for path in ("/healthz", "/v1/ledger/checkpoint")]
        await asyncio.sleep(0.2)
        work = [*(_request(http, auth, out) for _ in range(REQUESTS)),
                *(_stream(http, auth, out) for _ in range(STREAMS)),
                *(_slow_upload(http, auth, n, out) for n in range(SLOW_UPLOADS))]
        await asyncio.wait_for(asyncio.gather(*work), timeout=90)
        stop.set()
        await asyncio.gather(*probes)
    return out


def _wait_for_a_checkpoint(ops_url: str) -> None:
    """The operations port serves the checkpoint it last read: wait for the first one."""
    deadline = time.monotonic() + 15
    while httpx.get(ops_url + "/v1/ledger/checkpoint", timeout=5).status_code != 200:
        assert time.monotonic() < deadline, "no checkpoint reached the operations port"
        time.sleep(0.1)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_burst_from_one_liaison_is_answered_and_health_stays_up(
        backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    if backend == "postgresql":
        request.applymarker(pytest.mark.postgres)
    url = fresh_database_url(backend, request, tmp_path)
    ops_port = free_port()
    config = ServerConfig(data_dir=tmp_path / "data", database_url=url, workers=1,
                          extra_env={"CADENA_UPLOAD_RATE_GRACE_SECONDS": "3",
                                     "CADENA_OPS_PORT": str(ops_port)})
    coordinator, verifier_key = new_coordinator(config)
    server = Server(config, tmp_path / "server.log")
    server.start()
    try:
        cast = enrol_cast(server.url, coordinator, verifier_key, pairs=1)
        sender = cast.pairs[0][0]
        _wait_for_a_checkpoint(f"http://127.0.0.1:{ops_port}")
        began = time.monotonic()
        out = asyncio.run(_burst(server.url, f"http://127.0.0.1:{ops_port}", sender.auth))
        took = time.monotonic() - began
        assert httpx.get(server.url + "/healthz", timeout=5).status_code == 200
    finally:
        server.stop()
    assert not out.failures, out.failures[:10]
    assert took < 90
    answered = {kind: sum(c.values()) for kind, c in out.statuses.items()}
    assert answered["request"] == REQUESTS
    assert answered["stream"] == STREAMS
    assert answered["upload"] == SLOW_UPLOADS
    assert set(out.statuses["request"]) <= {200, 429, 503}, out.statuses
    assert out.statuses["request"][200] > 0
    assert set(out.statuses["stream"]) <= {200, 429, 503}, out.statuses
    assert out.statuses["stream"][200] > 0
    # an upload is refused at once (429/503) or cut off for trickling (408 or a closed socket)
    assert set(out.statuses["upload"]) <= {408, 429, 503, 0}, out.statuses
    for probe in ("/healthz", "/v1/ledger/checkpoint", "ops:/healthz",
                  "ops:/v1/ledger/checkpoint"):
        assert set(out.statuses[probe]) == {200}, out.statuses
    assert out.slowest_refusal < REFUSED_AT_ONCE, out.failures_if_slow
    assert max(out.slowest_probe.values()) < PROBE_LIMIT, out.slowest_probe
    run_cli(config, "ledger", "verify")
    # nothing lost and nothing invented: one granted entry per 2xx, and every
    # 429 counted in a summary written at shut-down
    entries = [e for e in read_entries(url) if e.actor is not None
               and e.actor.liaison == sender.id or e.action == SUMMARY_ACTION]
    granted = Counter(e.action for e in entries if e.outcome == "granted")
    assert granted["state.list"] == out.statuses["request"][200]
    assert granted["events.subscribe"] == out.statuses["stream"][200]
    refused_429 = sum(c[429] for c in out.statuses.values())
    counted = sum(e.details["count"] for e in entries if e.action == SUMMARY_ACTION)
    # an upload refused at once may reach its client as a closed socket (status 0)
    assert refused_429 <= counted <= refused_429 + out.statuses["upload"][0]
