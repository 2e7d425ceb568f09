"""The burst phase of ``bench/api.py``: how one worker holds under a hostile client's burst.

Not a test. Against a fresh ``cadena-server serve --workers 1`` (SQLite, or a
fresh PostgreSQL database), one logged-in liaison fires at once
:data:`REQUESTS` authenticated GETs (``/v1/states`` and ``/v1/packets``, half
each) and :data:`STREAMS` server-sent event streams (``/v1/events``, each
held open :data:`HOLD_SECONDS` s, then closed), one connection each. A probe
in a separate process (so that this process's event loop, busy firing the
burst, cannot delay or flatter its figures) sends ``GET /healthz`` and ``GET
/v1/ledger/checkpoint`` every :data:`PROBE_INTERVAL` s on a fixed schedule
while the burst lasts, each latency counted from its scheduled start.

Every request is bounded by :data:`REQUEST_TIMEOUT`, the burst as a whole by
:data:`DEADLINE`: a frozen server shows up as client timeouts, not as a hung
bench. Afterwards the server must still answer ``/healthz``; once it is
stopped, ``cadena-server ledger verify`` checks the ledger (every stream open
is an audited ledger entry).

Classification of answers: 2xx is success; 429 is always deliberate (a
limit); any other non-2xx is deliberate load shedding only if its problem
``type`` ends with ``overloaded`` or ``too-many-concurrent`` (typically a
503), else an error, as are client timeouts and connection errors.

Run through ``bench/api.py --burst-only`` (or ``--phases ...,burst``); this
module's own command line is the probe process.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import math
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script (the probe): make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench._server import (
    Directory,
    Liaison,
    RunningServer,
    bootstrap,
    create_postgres_database,
    drop_postgres_database,
    run_command,
    serve,
    server_env,
)
from crypto.keys import LiaisonKeys

REQUESTS = 1_000
STREAMS = 200
AUTH_PATHS = {"GET /v1/states": "/v1/states", "GET /v1/packets": "/v1/packets?box=inbox"}
SSE_KIND = "SSE /v1/events"
PROBES = {"probe /healthz": "/healthz", "probe checkpoint": "/v1/ledger/checkpoint"}
HEALTHZ = "probe /healthz"
HOLD_SECONDS = 3.0
PROBE_INTERVAL = 0.02
PROBE_CONNECTIONS = 64
"""Connections per probe process: enough that a healthy server never makes a probe wait for
one; bounded so that a frozen server does not cost thousands of sockets."""
REQUEST_TIMEOUT = 30.0
PROBE_GRACE = 5.0
DEADLINE = REQUEST_TIMEOUT + HOLD_SECONDS + 5.0
"""The whole burst: every request is bounded by REQUEST_TIMEOUT already; this is the net."""
CHECKPOINT_WAIT = 15.0
HEALTHZ_P99_MS = 100.0
MAX_WAIT_MS = 2_000.0
SHED_TYPES = ("overloaded", "too-many-concurrent")
COLUMNS = ("2xx", "429", "503", "4xx/5xx", "timeout", "conn err")


@dataclass
class Tally:
    """The answers to one kind of request: outcome columns, errors, latencies (s)."""

    kind: str
    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)
    errors: int = 0
    latencies: list[float] = field(default_factory=list)

    def add(self, column: str, error: bool, latency: float) -> None:
        """Record one answer (or failure) in ``column``."""
        self.outcomes[column] += 1
        self.errors += error
        self.latencies.append(latency)

    def pct_ms(self, p: float) -> float:
        """Nearest-rank percentile of the latencies in ms (100: the maximum)."""
        ordered = sorted(self.latencies)
        if not ordered:
            return math.nan
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] * 1e3

    def to_json(self) -> dict[str, Any]:
        """Counts and percentiles, plus the raw latencies (the probe process sends these)."""
        return {"kind": self.kind, "outcomes": dict(self.outcomes), "errors": self.errors,
                "latencies": self.latencies}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Tally:
        """The inverse of :meth:`to_json`."""
        return cls(data["kind"], collections.Counter(data["outcomes"]), int(data["errors"]),
                   [float(x) for x in data["latencies"]])


def classify(status: int, body: bytes) -> tuple[str, bool]:
    """The column of an answer and whether it is an error (see the module's docstring)."""
    if 200 <= status < 300:
        return "2xx", False
    if status == 429:
        return "429", False
    return ("503" if status == 503 else "4xx/5xx"), not _shed(body)


def _shed(body: bytes) -> bool:
    """Whether a problem body says the server shed the request on purpose."""
    try:
        kind = json.loads(body).get("type", "")
    except (ValueError, AttributeError):
        return False
    return isinstance(kind, str) and kind.endswith(SHED_TYPES)


# -- one request ---------------------------------------------------------------------------


async def _answer(send: Awaitable[httpx.Response], tally: Tally,
                  start: float) -> httpx.Response | None:
    """Await ``send`` within REQUEST_TIMEOUT; record a failure in ``tally`` and return None."""
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT):
            return await send
    except (TimeoutError, httpx.TimeoutException):
        tally.add("timeout", True, time.perf_counter() - start)
    except (httpx.HTTPError, OSError):
        tally.add("conn err", True, time.perf_counter() - start)
    return None


async def timed_get(client: httpx.AsyncClient, path: str, headers: dict[str, str],
                    tally: Tally, since: float | None = None) -> None:
    """GET ``path``; its latency counts from ``since`` (a probe's scheduled start) or now."""
    start = time.perf_counter() if since is None else since
    answer = await _answer(client.get(path, headers=headers), tally, start)
    if answer is not None:
        tally.add(*classify(answer.status_code, answer.content), time.perf_counter() - start)


async def sse_stream(client: httpx.AsyncClient, headers: dict[str, str], tally: Tally) -> None:
    """Open ``/v1/events`` (latency: to its response headers), hold it HOLD_SECONDS, close."""
    start = time.perf_counter()
    request = client.build_request("GET", "/v1/events", headers=headers)
    response = await _answer(client.send(request, stream=True), tally, start)
    if response is None:
        return
    latency = time.perf_counter() - start
    try:
        if response.is_success:
            tally.add("2xx", False, latency)
            await _drain(response, HOLD_SECONDS)
        else:
            body = b""
            with suppress(TimeoutError, httpx.HTTPError):
                async with asyncio.timeout(5.0):
                    body = await response.aread()
            tally.add(*classify(response.status_code, body), latency)
    finally:
        await response.aclose()


async def _drain(response: httpx.Response, seconds: float) -> None:
    """Read the stream for ``seconds`` (as a subscriber would), whatever it sends."""
    with suppress(TimeoutError, httpx.HTTPError):
        async with asyncio.timeout(seconds):
            async for _ in response.aiter_raw():
                pass


# -- the probe (a separate process) --------------------------------------------------------


def _stdin_closed() -> threading.Event:
    """An event set when stdin reaches EOF: the parent closes it when the burst is over."""
    closed = threading.Event()

    def wait() -> None:
        sys.stdin.buffer.read()
        closed.set()

    threading.Thread(target=wait, daemon=True).start()
    return closed


async def probe(url: str, seconds: float) -> list[Tally]:
    """Probe every PROBE_INTERVAL s on a fixed schedule until stdin closes or ``seconds``."""
    tallies = {kind: Tally(kind) for kind in PROBES}
    stop = _stdin_closed()
    limits = httpx.Limits(max_connections=PROBE_CONNECTIONS,
                          max_keepalive_connections=PROBE_CONNECTIONS)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=REQUEST_TIMEOUT) as client:
        print("ready", flush=True)
        tasks: dict[asyncio.Task[None], tuple[Tally, float]] = {}
        start = time.perf_counter()
        for n in range(math.ceil(seconds / PROBE_INTERVAL)):
            if stop.is_set():
                break
            due = start + n * PROBE_INTERVAL
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            for kind, path in PROBES.items():
                work = timed_get(client, path, {}, tallies[kind], since=due)
                tasks[asyncio.create_task(work)] = (tallies[kind], due)
        await _settle(tasks)
    return list(tallies.values())


async def _settle(tasks: dict[asyncio.Task[None], tuple[Tally, float]]) -> None:
    """Wait PROBE_GRACE s for the probes in flight; the rest count as timeouts.

    Without the grace, probes sent just before a frozen burst ended would keep
    the bench waiting a whole REQUEST_TIMEOUT more.
    """
    if not tasks:
        return
    _, late = await asyncio.wait(tasks, timeout=PROBE_GRACE)
    for task in late:
        task.cancel()
        tally, due = tasks[task]
        tally.add("timeout", True, time.perf_counter() - due)
    await asyncio.gather(*late, return_exceptions=True)


@contextmanager
def probing(url: str) -> Iterator[Callable[[], list[Tally]]]:
    """Run the probe process during the block; the callable stops it and returns its tallies.

    The process is killed on the way out if it has not finished by then.
    """
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--probe", url,
         "--seconds", str(DEADLINE)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    stdout = process.stdout

    def finish() -> list[Tally]:
        # communicate() closes stdin (the probe's signal to stop), then reads its answer.
        out, _ = process.communicate(timeout=REQUEST_TIMEOUT + 10)
        return [Tally.from_json(t) for t in json.loads(out.strip().splitlines()[-1])]

    try:
        if stdout.readline().strip() != "ready":
            raise RuntimeError("the probe process did not start")
        yield finish
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# -- the burst -----------------------------------------------------------------------------


async def fire(url: str, liaison: Liaison) -> list[Tally]:
    """Fire every request and stream at once, one connection each; wait until all are done."""
    tallies = {kind: Tally(kind) for kind in [*AUTH_PATHS, SSE_KIND]}
    connections = REQUESTS + STREAMS + 100
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=REQUEST_TIMEOUT) as client:
        tasks: dict[asyncio.Task[None], Tally] = {}
        paths = list(AUTH_PATHS.items())
        for n in range(REQUESTS + STREAMS):
            # One stream after every five requests: streams and requests arrive interleaved.
            if n % 6 == 5:
                tally, work = tallies[SSE_KIND], sse_stream(client, liaison.auth,
                                                           tallies[SSE_KIND])
            else:
                kind, path = paths[(n - n // 6) % len(paths)]
                tally, work = tallies[kind], timed_get(client, path, liaison.auth,
                                                       tallies[kind])
            tasks[asyncio.create_task(work)] = tally
        _, late = await asyncio.wait(tasks, timeout=DEADLINE)
        for task in late:  # past the net: cancel, count as timeouts
            task.cancel()
            tasks[task].add("timeout", True, DEADLINE)
        await asyncio.gather(*late, return_exceptions=True)
    return list(tallies.values())


async def burst(url: str, liaison: Liaison) -> tuple[list[Tally], float, float]:
    """The burst with the probe running throughout: every tally, its seconds and client CPU."""
    with probing(url) as finish:
        start, cpu = time.perf_counter(), time.process_time()
        tallies = await fire(url, liaison)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        probes = await asyncio.to_thread(finish)
    return tallies + probes, seconds, cpu


def _wait_for_checkpoint(http: httpx.Client) -> bool:
    """Wait (bounded) for the first signed checkpoint, so the probe measures a 200 path."""
    deadline = time.monotonic() + CHECKPOINT_WAIT
    while time.monotonic() < deadline:
        if http.get("/v1/ledger/checkpoint").status_code == 200:
            return True
        time.sleep(0.2)
    return False


def _alive(server: RunningServer) -> bool:
    """Whether ``/healthz`` answers 200 within 5 s after the burst."""
    try:
        with httpx.Client(base_url=server.url, timeout=5.0) as http:
            return http.get("/healthz").status_code == 200
    except httpx.HTTPError:
        return False


def _ledger_verifies(env: dict[str, str]) -> tuple[bool, str]:
    """``cadena-server ledger verify`` (bounded): whether it passed, and its last line."""
    try:
        done = run_command(env, ["ledger", "verify"], timeout=60.0)
    except subprocess.TimeoutExpired:
        return False, "ledger verify timed out after 60 s"
    lines = (done.stdout or done.stderr).strip().splitlines()
    return done.returncode == 0, lines[-1] if lines else f"exit {done.returncode}"


# -- one run and its report ----------------------------------------------------------------


@dataclass
class BurstResult:
    """One burst against one backend: the tallies and the checks around them."""

    backend: str
    log_level: str
    tallies: list[Tally]
    seconds: float
    client_cpu_s: float  # this process's CPU over the burst: the load generator's cost
    alive_after: bool
    ledger_ok: bool
    ledger_detail: str
    checkpoint_before: bool

    def to_json(self) -> dict[str, Any]:
        """Figures per kind (no raw latencies) and the checks."""
        kinds = [{"kind": t.kind, "count": len(t.latencies), "outcomes": dict(t.outcomes),
                  "errors": t.errors, "p50_ms": round(t.pct_ms(50), 2),
                  "p99_ms": round(t.pct_ms(99), 2), "max_ms": round(t.pct_ms(100), 2)}
                 for t in self.tallies]
        return {"backend": self.backend, "log_level": self.log_level, "kinds": kinds,
                "seconds": round(self.seconds, 3), "client_cpu_s": round(self.client_cpu_s, 3),
                "alive_after": self.alive_after,
                "ledger_ok": self.ledger_ok, "ledger_detail": self.ledger_detail,
                "checkpoint_before": self.checkpoint_before,
                "targets": [{"target": n, "value": v, "ok": ok} for n, v, ok in verdicts(self)]}


Outcome = tuple[list[Tally], float, float]


def _run_async(coro: Awaitable[Outcome]) -> Outcome:
    async def main() -> Outcome:
        return await coro
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main())
    return uvloop.run(main())


def run(backend: str, log_level: str, postgres_url: str) -> BurstResult:
    """A fresh one-worker server on ``backend``, one liaison, the burst, then the checks."""
    with tempfile.TemporaryDirectory(prefix="cadena-burst-") as tmp, ExitStack() as stack:
        url = None
        if backend == "postgresql":
            url = create_postgres_database(postgres_url)
            stack.callback(drop_postgres_database, postgres_url, url)
        env = server_env(Path(tmp) / "data", url, log_level=log_level)
        coordinator = Liaison("coord", LiaisonKeys.generate())
        bootstrap(env, coordinator)
        with serve(env, workers=1) as server:
            with httpx.Client(base_url=server.url, timeout=30.0) as http:
                liaison = Directory(http, coordinator).liaison("hostile", "CO")
                checkpoint = _wait_for_checkpoint(http)
            print(f"\n== burst: {backend}, 1 worker, CADENA_LOG_LEVEL={log_level}, "
                  f"server pid {server.pid} ==", flush=True)
            tallies, seconds, cpu = _run_async(burst(server.url, liaison))
            alive = _alive(server)
        ok, detail = _ledger_verifies(env)  # the server is stopped: a quiet database
    return BurstResult(backend, log_level, tallies, seconds, cpu, alive, ok, detail, checkpoint)


def verdicts(result: BurstResult) -> list[tuple[str, str, bool]]:
    """Each target: its name, the measured value, and whether it holds."""
    errors = sum(t.errors for t in result.tallies)
    healthz = next(t for t in result.tallies if t.kind == HEALTHZ)
    worst = max(result.tallies, key=lambda t: t.pct_ms(100) if t.latencies else 0.0)
    p99 = healthz.pct_ms(99)
    return [
        ("0 errors other than deliberate 429s / shed 503s", f"{errors} errors", errors == 0),
        (f"p99 of /healthz during the burst < {HEALTHZ_P99_MS:.0f} ms", f"{p99:.1f} ms",
         p99 < HEALTHZ_P99_MS),
        (f"no request waits more than {MAX_WAIT_MS / 1e3:.0f} s (max of every kind)",
         f"{worst.pct_ms(100):.0f} ms ({worst.kind})", worst.pct_ms(100) < MAX_WAIT_MS),
        ("/healthz answers after the burst", "yes" if result.alive_after else "no",
         result.alive_after),
        ("the ledger verifies after the burst", result.ledger_detail, result.ledger_ok),
    ]


def report(result: BurstResult) -> str:
    """The table per kind, then the targets with PASS/FAIL."""
    head = ("kind", "count", *COLUMNS, "errors", "p50 ms", "p99 ms", "max ms")
    lines = [f"burst of {REQUESTS} authenticated GETs + {STREAMS} SSE streams (held "
             f"{HOLD_SECONDS:.0f} s) at once, one liaison; probes every "
             f"{PROBE_INTERVAL * 1e3:.0f} ms; burst lasted {result.seconds:.1f} s "
             f"(load generator CPU {result.client_cpu_s:.1f} s)",
             f"{head[0]:<18}" + "".join(f"{h:>9}" for h in head[1:])]
    for t in result.tallies:
        cells = [str(len(t.latencies)), *(str(t.outcomes[c]) for c in COLUMNS), str(t.errors),
                 *(f"{t.pct_ms(p):.1f}" for p in (50, 99, 100))]
        lines.append(f"{t.kind:<18}" + "".join(f"{c:>9}" for c in cells))
    lines.append("(SSE latency: to the response headers; probe latency: from its scheduled "
                 "start. 429 is always deliberate; other non-2xx count as errors unless the "
                 "problem type ends with 'overloaded' or 'too-many-concurrent'.)")
    if not result.checkpoint_before:
        lines.append("note: no checkpoint was signed before the burst (probe 503s expected)")
    lines.append("targets:")
    lines += [f"  {'PASS' if ok else 'FAIL'}  {name}: {value}"
              for name, value, ok in verdicts(result)]
    return "\n".join(lines)


def _probe_main() -> None:
    """The probe process: probe, then print the tallies as one JSON line."""
    parser = argparse.ArgumentParser(description="burst probe (started by bench/api.py)")
    parser.add_argument("--probe", required=True, help="the server's base URL")
    parser.add_argument("--seconds", type=float, default=DEADLINE)
    args = parser.parse_args()

    async def main() -> list[Tally]:
        return await probe(args.probe, args.seconds)

    tallies = asyncio.run(main())
    print(json.dumps([t.to_json() for t in tallies]), flush=True)


if __name__ == "__main__":
    _probe_main()
