"""The burst phase of ``bench/api.py``: how one worker holds under a hostile client's burst.

Not a test. Against a fresh ``cadena-server serve --workers 1`` (SQLite, or a
fresh PostgreSQL database), one logged-in liaison fires at once
:data:`REQUESTS` authenticated GETs (``/v1/states`` and ``/v1/packets``, half
each) and :data:`STREAMS` server-sent event streams (``/v1/events``, each
held open :data:`HOLD_SECONDS` s, then closed), one connection each. A probe
in a separate process (so that the load generator, busy firing the burst,
cannot delay or flatter its figures) sends ``GET /healthz`` and ``GET
/v1/ledger/checkpoint`` every :data:`PROBE_INTERVAL` s on a fixed schedule
while the burst lasts, each latency counted from its scheduled start.

The burst is fired by ``bench/_loadgen.py``: raw sockets and pre-built
requests, spread over :data:`GENERATORS` worker processes that start at one
common wall-clock instant. (An ``httpx`` client in one asyncio process spent
6.4 s of CPU on a 6.5 s burst: its p50 of 6.2 s was its own queue.) Each
request gets two figures, both ending at its status line: ``server`` from
its bytes written (what the server made it wait; the "no request waits more
than 2 s" target uses this one) and ``from start`` from the common start
(the same plus the generator's own delay in opening that connection). The
generator's CPU is printed beside the burst's length: while it is well
under, its queue is not what the table shows.

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
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script (the probe): make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench import _loadgen
from bench._server import (
    Directory,
    Liaison,
    RunningServer,
    bootstrap,
    create_postgres_database,
    drop_postgres_database,
    free_port,
    run_command,
    serve,
    server_env,
)
from crypto import LiaisonKeys

REQUESTS = 1_000
STREAMS = 200
AUTH_PATHS = {"GET /v1/states": "/v1/states", "GET /v1/packets": "/v1/packets?box=inbox"}
SSE_KIND = "SSE /v1/events"
PROBES = {"probe /healthz": "/healthz", "probe checkpoint": "/v1/ledger/checkpoint",
          "ops /healthz": "/healthz", "ops checkpoint": "/v1/ledger/checkpoint"}
"""Probes of the API port, and (``ops``) of the operations port (app/ops.py)."""
HEALTHZ = "probe /healthz"
OPS_HEALTHZ = "ops /healthz"
HOLD_SECONDS = 3.0
GENERATORS = 2
"""Load generator processes: each fires its share of the burst at the common start."""
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
_EXTRA_ENV = {k: v for k, v in os.environ.items()
              if k in ("CADENA_REQUEST_THREADS", "CADENA_GIL_SWITCH_INTERVAL_MS")}
"""Settings passed through to the server under test (to compare them side by side)."""
COLUMNS = ("2xx", "429", "503", "4xx/5xx", "timeout", "conn err")


def percentile_ms(values: list[float], p: float) -> float:
    """Nearest-rank percentile of ``values`` (s) in ms (100: the maximum; NaN if none)."""
    ordered = sorted(v for v in values if not math.isnan(v))
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] * 1e3


@dataclass
class Tally:
    """The answers to one kind of request: outcome columns, errors, latencies (s).

    ``latencies`` is what the server made each request wait (burst: bytes
    written to status line; probe: scheduled start to answer), the figure the
    targets use. ``from_start`` (burst only) runs from the common start to the
    status line; ``connects`` (burst only) from connect to bytes written.
    """

    kind: str
    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    from_start: list[float] = field(default_factory=list)
    connects: list[float] = field(default_factory=list)

    def add(self, column: str, error: bool, latency: float,
            from_start: float | None = None, connect: float | None = None) -> None:
        """Record one answer (or failure) in ``column``."""
        self.outcomes[column] += 1
        self.errors += error
        self.latencies.append(latency)
        if from_start is not None:
            self.from_start.append(from_start)
        if connect is not None:
            self.connects.append(connect)

    def pct_ms(self, p: float) -> float:
        """Nearest-rank percentile of the latencies in ms (100: the maximum)."""
        return percentile_ms(self.latencies, p)

    def to_json(self) -> dict[str, Any]:
        """Counts and raw latencies (the probe process sends these; probes have no others)."""
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


# -- one probe request ---------------------------------------------------------------------


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


# -- the probe (a separate process) --------------------------------------------------------


def _stdin_closed() -> threading.Event:
    """An event set when stdin reaches EOF: the parent closes it when the burst is over."""
    closed = threading.Event()

    def wait() -> None:
        sys.stdin.buffer.read()
        closed.set()

    threading.Thread(target=wait, daemon=True).start()
    return closed


async def probe(url: str, ops_url: str, seconds: float) -> list[Tally]:
    """Probe every PROBE_INTERVAL s on a fixed schedule until stdin closes or ``seconds``."""
    tallies = {kind: Tally(kind) for kind in PROBES}
    stop = _stdin_closed()
    limits = httpx.Limits(max_connections=PROBE_CONNECTIONS,
                          max_keepalive_connections=PROBE_CONNECTIONS)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=REQUEST_TIMEOUT) as api, \
            httpx.AsyncClient(base_url=ops_url, limits=limits, timeout=REQUEST_TIMEOUT) as ops:
        print("ready", flush=True)
        tasks: dict[asyncio.Task[None], tuple[Tally, float]] = {}
        start = time.perf_counter()
        for n in range(math.ceil(seconds / PROBE_INTERVAL)):
            if stop.is_set():
                break
            due = start + n * PROBE_INTERVAL
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            for kind, path in PROBES.items():
                client = ops if kind.startswith("ops ") else api
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
def probing(url: str, ops_url: str) -> Iterator[Callable[[], list[Tally]]]:
    """Run the probe process during the block; the callable stops it and returns its tallies.

    The process is killed on the way out if it has not finished by then.
    """
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--probe", url, "--ops", ops_url,
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


def shots(url: str, liaison: Liaison) -> list[_loadgen.Shot]:
    """The burst's requests and streams, pre-built, in the order they are fired."""
    paths = list(AUTH_PATHS.items())
    gets = {kind: _loadgen.request_bytes(url, path, liaison.auth) for kind, path in paths}
    sse = _loadgen.request_bytes(url, "/v1/events",
                                 {**liaison.auth, "Accept": "text/event-stream"})
    fired: list[_loadgen.Shot] = []
    for n in range(REQUESTS + STREAMS):
        # One stream after every five requests: streams and requests arrive interleaved.
        if n % 6 == 5:
            fired.append(_loadgen.Shot(SSE_KIND, sse, stream=True))
        else:
            kind = paths[(n - n // 6) % len(paths)][0]
            fired.append(_loadgen.Shot(kind, gets[kind], stream=False))
    return fired


def tally(fired: _loadgen.Fired) -> list[Tally]:
    """The burst's answers by kind, classified (a failure is an error in its own column)."""
    tallies = {kind: Tally(kind) for kind in [*AUTH_PATHS, SSE_KIND]}
    for answer in fired.answers:
        column, error = ((answer.failure or "conn err"), True) if answer.status is None \
            else classify(answer.status, answer.body)
        tallies[answer.kind].add(column, error, answer.server_s, answer.from_start_s,
                                 answer.connect_s)
    return list(tallies.values())


@dataclass
class CpuUse:
    """CPU seconds spent while the burst was fired (NaN where ``/proc`` cannot tell)."""

    wall_s: float = math.nan
    server_s: float = math.nan  # the server process (one worker: it serves every request)
    machine_s: float = math.nan  # every process on the machine: ours, the server, other users


def _process_cpu(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (all its threads)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_cpu() -> float:
    """Busy CPU seconds of the whole machine so far, every core (``/proc/stat``)."""
    try:
        ticks = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return math.nan
    busy = sum(int(ticks[i]) for i in (0, 1, 2, 5, 6, 7))  # user nice system irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK")


@contextmanager
def cpu_use(server_pid: int) -> Iterator[CpuUse]:
    """Measure the block: wall time, the server's CPU and the machine's.

    The cores are shared: a server that got less CPU than the wall time
    while the machine was full was starved by others, not slow on its own.
    """
    use = CpuUse()
    wall, server, machine = time.perf_counter(), _process_cpu(server_pid), _machine_cpu()
    try:
        yield use
    finally:
        use.wall_s = time.perf_counter() - wall
        use.server_s = _process_cpu(server_pid) - server
        use.machine_s = _machine_cpu() - machine


def burst(url: str, ops_url: str, liaison: Liaison,
          server_pid: int) -> tuple[list[Tally], _loadgen.Fired, CpuUse]:
    """The burst with the probe running throughout: every tally, the generator, the CPU used.

    The generator processes start (and are ready) before the probe does, so
    the probe's figures cover the burst, not their start-up.
    """
    with _loadgen.generators(url, shots(url, liaison), processes=GENERATORS,
                             hold=HOLD_SECONDS, timeout=REQUEST_TIMEOUT,
                             deadline=DEADLINE) as go, probing(url, ops_url) as finish:
        with cpu_use(server_pid) as use:
            fired = go()
        probes = finish()
    return tally(fired) + probes, fired, use


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


def _figures(values: list[float], name: str) -> dict[str, float]:
    """``name``_p50_ms, _p99_ms and _max_ms of ``values`` (s), rounded, for the JSON."""
    return {f"{name}_{label}_ms": round(percentile_ms(values, p), 2)
            for label, p in (("p50", 50), ("p99", 99), ("max", 100))}


@dataclass
class BurstResult:
    """One burst against one backend: the tallies, the load generator, the checks around them."""

    backend: str
    log_level: str
    tallies: list[Tally]
    seconds: float  # from the common start to the last answer (or the deadline)
    client_cpu_s: float  # the load generator processes' CPU over the burst, summed
    generators: int
    cpu: CpuUse
    alive_after: bool
    ledger_ok: bool
    ledger_detail: str
    checkpoint_before: bool
    server_log: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """Figures per kind (no raw latencies), the generator's cost and the checks."""
        kinds = [{"kind": t.kind, "count": len(t.latencies), "outcomes": dict(t.outcomes),
                  "errors": t.errors, "p50_ms": round(t.pct_ms(50), 2),
                  "p99_ms": round(t.pct_ms(99), 2), "max_ms": round(t.pct_ms(100), 2),
                  **(_figures(t.from_start, "from_start") if t.from_start else {}),
                  **(_figures(t.connects, "connect") if t.connects else {})}
                 for t in self.tallies]
        return {"backend": self.backend, "log_level": self.log_level, "kinds": kinds,
                "latency": "p50/p99/max_ms: server side (burst: bytes written to status "
                           "line; probes: scheduled start to answer)",
                "seconds": round(self.seconds, 3), "client_cpu_s": round(self.client_cpu_s, 3),
                "generators": self.generators, "alive_after": self.alive_after,
                "cpu_during_burst_s": {"wall": round(self.cpu.wall_s, 3),
                                       "server": round(self.cpu.server_s, 3),
                                       "machine": round(self.cpu.machine_s, 3),
                                       "cores": os.cpu_count()},
                "ledger_ok": self.ledger_ok, "ledger_detail": self.ledger_detail,
                "checkpoint_before": self.checkpoint_before, "server_log": self.server_log,
                "targets": [{"target": n, "value": v, "ok": ok} for n, v, ok in verdicts(self)]}


def server_log_summary(path: Path) -> dict[str, Any]:
    """The server's log over the whole run, counted: lines by level, events, request statuses.

    The server logs one JSON object a line; a ``request`` line (method, path,
    status) only at level info, so statuses are empty at the default warning.
    """
    levels: collections.Counter[str] = collections.Counter()
    events: collections.Counter[str] = collections.Counter()
    statuses: collections.Counter[str] = collections.Counter()
    other: list[str] = []
    text = path.read_text(errors="replace") if path.exists() else ""
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if not isinstance(entry, dict):
            other.append(line[:160])  # a traceback, uvicorn's or the supervisor's own text
            continue
        levels[str(entry.get("level"))] += 1
        events[str(entry.get("event"))] += 1
        if entry.get("event") == "request":
            statuses[str(entry.get("status"))] += 1
    return {"lines": len(text.splitlines()), "levels": dict(levels), "not_json": len(other),
            "first_not_json": other[0] if other else None,
            "events": dict(events.most_common(8)), "statuses": dict(statuses)}


def run(backend: str, log_level: str, postgres_url: str) -> BurstResult:
    """A fresh one-worker server on ``backend``, one liaison, the burst, then the checks."""
    with tempfile.TemporaryDirectory(prefix="cadena-burst-") as tmp, ExitStack() as stack:
        url = None
        if backend == "postgresql":
            url = create_postgres_database(postgres_url)
            stack.callback(drop_postgres_database, postgres_url, url)
        ops_port = free_port()
        env = server_env(Path(tmp) / "data", url, log_level=log_level,
                         extra={"CADENA_OPS_PORT": str(ops_port), **_EXTRA_ENV})
        coordinator = Liaison("coord", LiaisonKeys.generate())
        bootstrap(env, coordinator)
        with serve(env, workers=1) as server:
            with httpx.Client(base_url=server.url, timeout=30.0) as http:
                liaison = Directory(http, coordinator).liaison("hostile", "CO")
                checkpoint = _wait_for_checkpoint(http)
            print(f"\n== burst: {backend}, 1 worker, CADENA_LOG_LEVEL={log_level}, "
                  f"server pid {server.pid} ==", flush=True)
            tallies, fired, use = burst(server.url, f"http://127.0.0.1:{ops_port}", liaison,
                                        server.pid)
            alive = _alive(server)
        log = server_log_summary(server.log_path)  # the server is stopped: its log is whole
        ok, detail = _ledger_verifies(env)  # and its database quiet
    return BurstResult(backend, log_level, tallies, fired.seconds, fired.cpu_s, fired.processes,
                       use, alive, ok, detail, checkpoint, log)


def verdicts(result: BurstResult) -> list[tuple[str, str, bool]]:
    """Each target: its name, the measured value, and whether it holds."""
    errors = sum(t.errors for t in result.tallies)
    healthz = next(t for t in result.tallies if t.kind == HEALTHZ)
    ops = next(t for t in result.tallies if t.kind == OPS_HEALTHZ)
    worst = max(result.tallies, key=lambda t: t.pct_ms(100) if t.latencies else 0.0)
    p99, ops_p99 = healthz.pct_ms(99), ops.pct_ms(99)
    return [
        ("0 errors other than deliberate 429s / shed 503s", f"{errors} errors", errors == 0),
        (f"p99 of /healthz during the burst < {HEALTHZ_P99_MS:.0f} ms (API port)",
         f"{p99:.1f} ms", p99 < HEALTHZ_P99_MS),
        (f"p99 of /healthz during the burst < {HEALTHZ_P99_MS:.0f} ms (operations port)",
         f"{ops_p99:.1f} ms", ops_p99 < HEALTHZ_P99_MS),
        (f"no request waits more than {MAX_WAIT_MS / 1e3:.0f} s (server-side max of every "
         "kind)", f"{worst.pct_ms(100):.0f} ms ({worst.kind})", worst.pct_ms(100) < MAX_WAIT_MS),
        ("/healthz answers after the burst", "yes" if result.alive_after else "no",
         result.alive_after),
        ("the ledger verifies after the burst", result.ledger_detail, result.ledger_ok),
    ]


def _table(tallies: list[Tally]) -> list[str]:
    """One row per kind: outcome counts, server-side and from-start p50/p99/max."""
    counts, waits = ("count", *COLUMNS, "errors"), ("p50", "p99", "max") * 2
    lines = [f"{'':<17}{'':>{9 * len(counts)}}{'server ms':^27}{'from start ms':^27}",
             f"{'kind':<17}" + "".join(f"{h:>9}" for h in (*counts, *waits))]
    for t in tallies:
        cells = [str(len(t.latencies)), *(str(t.outcomes[c]) for c in COLUMNS), str(t.errors)]
        cells += ["-" if math.isnan(v) else f"{v:.1f}"
                  for values in (t.latencies, t.from_start)
                  for v in (percentile_ms(values, p) for p in (50, 99, 100))]
        lines.append(f"{t.kind:<17}" + "".join(f"{c:>9}" for c in cells))
    return lines


def _load_lines(result: BurstResult) -> list[str]:
    """Who used the CPU during the burst: the generator, the server, the whole machine."""
    busy = result.client_cpu_s / max(result.seconds * result.generators, 1e-9)
    connects = [c for t in result.tallies for c in t.connects]
    cpu, cores = result.cpu, os.cpu_count() or 1
    lines = [
        f"load generator: {result.generators} processes, CPU {result.client_cpu_s:.2f} s in a "
        f"{result.seconds:.1f} s burst ({busy:.0%} busy each); connect to bytes written: "
        f"p50 {percentile_ms(connects, 50):.1f} ms, p99 {percentile_ms(connects, 99):.1f} ms, "
        f"max {percentile_ms(connects, 100):.1f} ms",
        f"CPU while it was fired ({cpu.wall_s:.1f} s x {cores} cores = "
        f"{cpu.wall_s * cores:.1f} core-s): server {cpu.server_s:.2f} s, whole machine "
        f"{cpu.machine_s:.2f} s (everything else: the probe, the database, other users: "
        f"{cpu.machine_s - cpu.server_s - result.client_cpu_s:.2f} s)",
    ]
    lines.append(_flood_line(result.tallies))
    if busy > 0.5:
        lines.append("note: the generator was busy over half the burst: from-start figures "
                     "include its queue; server figures may too")
    return lines


def _flood_line(tallies: list[Tally]) -> str:
    """How long the burst's answers took to come, against how many probes were slow.

    Every burst request is answered on the server's one event loop, as every
    probe is: probes scheduled while that loop works through the flood wait
    behind it. If the slow probes are about as many as fit in the flood's
    window, that is why they were slow.
    """
    fired = [s for t in tallies if t.from_start for s in t.from_start]
    window_ms = percentile_ms(fired, 100)
    slow = [f"{t.kind.removeprefix('probe ')} {sum(x * 1e3 > HEALTHZ_P99_MS for x in t.latencies)}"
            f" of {len(t.latencies)}" for t in tallies if t.kind in PROBES]
    return (f"flood: the last burst answer came {window_ms:.0f} ms after the start "
            f"(~{window_ms / (PROBE_INTERVAL * 1e3):.0f} probe slots); probes slower than "
            f"{HEALTHZ_P99_MS:.0f} ms: {', '.join(slow)}")


def _notes(result: BurstResult) -> list[str]:
    """What the figures mean, who used the CPU, and the server's log."""
    log = result.server_log
    lines = [
        "(server ms: a burst request from its bytes written to its status line (SSE: to "
        "the response head), a probe from its scheduled start; the 2 s target uses it. From "
        "start ms: from the common start to the status line, the generator's own delay "
        "included. 429 is always deliberate; other non-2xx count as errors unless the problem "
        "type ends with 'overloaded' or 'too-many-concurrent'.)",
        *_load_lines(result),
        f"server log (whole run, {result.log_level}): {log['lines']} lines, levels "
        f"{log['levels']}, events {log['events']}"
        + (f", request statuses {log['statuses']}" if log["statuses"] else "")
        + (f"; {log['not_json']} not JSON, first: {log['first_not_json']!r}"
           if log["not_json"] else ""),
    ]
    if not result.checkpoint_before:
        lines.append("note: no checkpoint was signed before the burst (probe 503s expected)")
    return lines


def report(result: BurstResult) -> str:
    """The table per kind, the notes, then the targets with PASS/FAIL."""
    lines = [f"burst of {REQUESTS} authenticated GETs + {STREAMS} SSE streams (held "
             f"{HOLD_SECONDS:.0f} s) at once, one liaison, from {result.generators} raw-socket "
             f"processes; probes every {PROBE_INTERVAL * 1e3:.0f} ms; burst lasted "
             f"{result.seconds:.1f} s", *_table(result.tallies), *_notes(result), "targets:"]
    lines += [f"  {'PASS' if ok else 'FAIL'}  {name}: {value}"
              for name, value, ok in verdicts(result)]
    return "\n".join(lines)


def _probe_main() -> None:
    """The probe process: probe, then print the tallies as one JSON line."""
    parser = argparse.ArgumentParser(description="burst probe (started by bench/api.py)")
    parser.add_argument("--probe", required=True, help="the server's base URL")
    parser.add_argument("--ops", required=True, help="the server's operations port URL")
    parser.add_argument("--seconds", type=float, default=DEADLINE)
    args = parser.parse_args()

    async def main() -> list[Tally]:
        return await probe(args.probe, args.ops, args.seconds)

    tallies = asyncio.run(main())
    print(json.dumps([t.to_json() for t in tallies]), flush=True)


if __name__ == "__main__":
    _probe_main()
