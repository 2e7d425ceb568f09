"""HTTP API benchmark: packet submission and retrieval against a real server, vs ``/healthz``.

Not a test. For each backend it starts ``cadena-server serve`` as a child
process on a loopback port (``bench/_server.py``) — SQLite with one worker,
PostgreSQL (a fresh database, dropped afterwards) with ``--workers 2`` — and
drives it from this process with ``httpx.AsyncClient`` on asyncio. Phases,
each measured after a short warm-up whose numbers are discarded:

- ``healthz``: ``GET /healthz``, the trivial endpoint, as the reference: same
  server, same middleware, no database;
- ``submit-inline``: the envelope ``POST /v1/packets`` with both streams
  inline (``inline_streams``): how a client submits a small packet, one
  request and one ledger entry;
- ``submit-full``: one *operation* = the two blob uploads (``PUT
  /v1/blobs/{sha256}``) and the envelope ``POST /v1/packets``; three requests
  and three ledger entries per operation: the path of large content, shown
  for comparison (its req/s and ops/s are printed as ``info``, not targets);
- ``submit-post``: the envelope ``POST /v1/packets`` alone, its blobs
  uploaded beforehand (outside the measurement);
- ``retrieve``: ``GET /v1/packets/{id}`` by a recipient (key delivery);
- ``burst`` (not run by default; ``--burst-only`` runs it alone): a hostile
  client's burst against a fresh server with ONE worker per backend: 1,000
  authenticated GETs and 200 event streams at once from one liaison, while a
  probe process times ``/healthz`` and ``/v1/ledger/checkpoint`` every 20 ms;
  targets: no errors but deliberate 429s (or shed 503s), ``/healthz`` p99
  < 100 ms, no answer slower than 2 s; then ``/healthz`` must still answer and
  the ledger verify. The burst is fired from two worker processes with raw
  sockets (``bench/_loadgen.py``), its latencies measured from each request's
  bytes written to its status line. See ``bench/burst.py``; it ends within
  about a minute and a half even against a frozen server.

Each phase runs closed-loop (``--concurrency`` clients back to back for
``--duration`` s: the peak rate and p50/p99 latency) and then open-loop at half
that peak (requests started on a fixed schedule; latency counted from the
scheduled start, so a stalled server cannot hide queueing: p99 target
≤ 50 ms). Targets: POST submissions (inline and with uploaded blobs) ≥ 25 %
and retrievals ≥ 35 % of ``/healthz`` requests/s; a phase with failed
requests meets no target. On a small machine the closed-loop ``/healthz`` is
bound by this load generator's CPU, not the server's, which flatters those
ratios; the bench therefore also prints, for information, the server's CPU
per ``/healthz`` divided by its CPU per operation: the ratio a reference
bound by the server alone would give. The
server runs with the submission rate limit lifted (``UNLIMITED``).

A packet is a 4 KiB message sealed with ``crypto.seal_packet`` from one of
four senders to two recipients (streams: manifest 380 B and message 4,112 B;
envelope 1.3 KB). Every packet is sealed before the phase that sends it: the
machine may have as few cores as the server has workers, and the load
generator shares them, which the output notes (with the load average, the
CPU seconds the server and the client spent in each phase, and the busiest
worker's share of the server's: the kernel spreads the sixteen connections of
a phase over the workers by a hash, and an uneven split caps the rate).

Server-bound mode (issue 21): ``python bench/api.py --server-bound [--configs
sqlite-1,pg-1,pg-2] [--wrk-phases healthz,submit,retrieve,list]`` drives each
configuration with wrk instead and reports req/s, server CPU per request
(database backends included) and the time spent waiting for the ledger head
(``bench/_serverbound.py``). ``bench/synapse.py`` runs the same submit and
retrieve beside Matrix Synapse's send and fetch, in alternating rounds.

Usage: ``python bench/api.py [--backends sqlite,postgresql] [--phases ...] [--concurrency 16]
[--duration 10] [--log-levels warning] [--json PATH] [--profile DIR] [--burst-only]``.
``--profile DIR`` records each server worker with py-spy (raw collapsed
stacks) during every closed-loop phase; it perturbs the figures. Only
samples holding the GIL are kept (``--gil``): Python's CPU time, not the
threads waiting for the connection pool or the database.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import json
import math
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench import _serverbound as serverbound
from bench import burst
from bench._server import (
    Directory,
    Liaison,
    RunningServer,
    b64,
    bootstrap,
    create_postgres_database,
    drop_postgres_database,
    serve,
    server_env,
)
from crypto import Classification, HandlingCode, LiaisonKeys, PacketMeta, SealedPacket, seal_packet

CHANNEL = "bench"
UNLIMITED = {"CADENA_RATE_SUBMIT_PER_MINUTE": "1000000",
             "CADENA_MAX_REQUESTS_PER_LIAISON": "1000", "CADENA_MAX_UPLOADS_PER_LIAISON": "1000"}
"""The per-liaison submission limit (default 120 a minute) and the per-liaison bounds
on requests and uploads in flight (16 and 4, app/admission.py) are lifted: the
benchmark measures what a submission costs, and four senders at full speed pass the
defaults at once, after which cheap 429 refusals would pass for throughput."""
SENDERS = 4
OPEN_CONNECTIONS = 16
"""Connections each of the open loop's ``--concurrency`` clients may open (it never waits
for one: the schedule holds)."""
WARMUP_SECONDS = 2.0
P99_TARGET_MS = 50.0
TARGETS = {"submit-inline": 0.25, "submit-post": 0.25, "retrieve": 0.35}
INFO = {"submit-full": 0.25}
"""Measured against a target's share but not a target: large content's three requests."""
SUBMISSIONS = {"submit-inline": "inline", "submit-full": "blobs", "submit-post": "uploaded"}
"""The submission phases, in the order they run, and how their streams travel."""
REQUESTS = {"inline": 1, "blobs": 3, "uploaded": 1}
"""Requests per submission, by how its streams travel: inline in the POST, uploaded as
blobs by the operation itself, or uploaded beforehand (outside the measurement)."""
Op = Callable[[httpx.AsyncClient], Awaitable[bool]]
"""One unit of work: its requests, True if every answer was 2xx."""


@dataclass
class Phase:
    """The figures of one measured run."""

    backend: str
    log_level: str
    phase: str
    mode: str  # "closed" (C clients back to back) or "open" (fixed schedule)
    requests_per_op: int
    concurrency: int | None = None
    target_rate: float | None = None
    ops: int = 0
    errors: int = 0
    seconds: float = 0.0
    ops_per_s: float = 0.0
    requests_per_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    late_starts: int = 0  # open loop: ops started > 5 ms behind schedule (client saturated)
    server_cpu_s: float = 0.0
    busiest_worker_share: float = 1.0  # of the server's CPU time: 0.5 is even over two workers
    server_cpu_ms_per_op: float = 0.0
    client_cpu_s: float = 0.0
    loadavg_1m: float = 0.0
    latencies: list[float] = field(default_factory=list, repr=False)

    def finish(self, seconds: float) -> Phase:
        """Fill the rates and percentiles from the recorded latencies."""
        lat = sorted(self.latencies)
        self.ops, self.seconds = len(lat), seconds
        self.ops_per_s = self.ops / seconds if seconds > 0 else 0.0
        self.requests_per_s = self.ops_per_s * self.requests_per_op
        if lat:
            self.p50_ms, self.p99_ms = _pct(lat, 50) * 1e3, _pct(lat, 99) * 1e3
            self.max_ms = lat[-1] * 1e3
        self.loadavg_1m = os.getloadavg()[0]
        return self

    def to_json(self) -> dict[str, Any]:
        """Everything but the raw latencies, rounded."""
        data = asdict(self)
        del data["latencies"]
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in data.items()}


def _pct(ordered: list[float], p: float) -> float:
    """Nearest-rank percentile of a sorted list."""
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


# -- the exchange under load --------------------------------------------------------------


@dataclass
class Exchange:
    """Senders and recipients enrolled in one channel, and what was submitted."""

    senders: list[Liaison]
    recipients: list[Liaison]
    message_bytes: int
    submitted: list[str] = field(default_factory=list)

    def seal(self, count: int) -> collections.deque[tuple[Liaison, SealedPacket]]:
        """``count`` packets, round robin over the senders, each to both recipients."""
        meta = PacketMeta(CHANNEL, Classification("CONFIDENTIAL"), HandlingCode("H0"), "B2",
                          case_reference="BENCH-1")
        to = {r.id: r.keys.public for r in self.recipients}
        packets: collections.deque[tuple[Liaison, SealedPacket]] = collections.deque()
        for n in range(count):
            sender = self.senders[n % len(self.senders)]
            packets.append((sender, seal_packet(sender.keys, sender.id, to, meta,
                                                os.urandom(self.message_bytes))))
        return packets


def enrol(http: httpx.Client, coordinator: Liaison, message_bytes: int) -> Exchange:
    """Four senders in CO, two recipients in MX, one channel with them all."""
    directory = Directory(http, coordinator)
    directory.state("MX")
    senders = [directory.liaison(f"sender{n}", "CO") for n in range(SENDERS)]
    recipients = [directory.liaison(name, "MX") for name in ("bob", "carol")]
    directory.channel(CHANNEL, [*senders, *recipients])
    return Exchange(senders, recipients, message_bytes)


async def _upload(client: httpx.AsyncClient, sender: Liaison, sealed: SealedPacket) -> bool:
    for stream in sealed.streams:
        digest = hashlib.sha256(stream).hexdigest()
        answer = await client.put(f"/v1/blobs/{digest}", content=stream, headers=sender.auth)
        if answer.status_code not in (200, 201):
            return False
    return True


def submit_op(exchange: Exchange, sender: Liaison, sealed: SealedPacket, how: str) -> Op:
    """Submit one packet, its streams travelling ``how`` (a key of :data:`REQUESTS`)."""
    body: dict[str, Any] = {"envelope": b64(sealed.envelope.to_bytes())}
    if how == "inline":
        body["inline_streams"] = [{"index": i, "ciphertext": b64(stream)}
                                  for i, stream in enumerate(sealed.streams)]

    async def op(client: httpx.AsyncClient) -> bool:
        if how == "blobs" and not await _upload(client, sender, sealed):
            return False
        answer = await client.post("/v1/packets", json=body, headers=sender.auth)
        if answer.status_code != 201:
            return False
        exchange.submitted.append(answer.json()["id"])
        return True

    return op


def retrieve_op(exchange: Exchange) -> Op:
    """A recipient retrieves a random submitted packet."""
    packet_id = random.choice(exchange.submitted)
    recipient = random.choice(exchange.recipients)

    async def op(client: httpx.AsyncClient) -> bool:
        answer = await client.get(f"/v1/packets/{packet_id}", headers=recipient.auth)
        return answer.status_code == 200

    return op


async def healthz_op(client: httpx.AsyncClient) -> bool:
    """The reference request."""
    return (await client.get("/healthz")).status_code == 200


# -- load generation ------------------------------------------------------------------


Source = Callable[[], Op | None]
"""The next unit of work, or None when the pre-sealed packets run out."""


async def _timed(client: httpx.AsyncClient, op: Op, since: float, into: Phase) -> None:
    try:
        ok = await op(client)
    except httpx.HTTPError:
        ok = False
    into.latencies.append(time.perf_counter() - since)
    into.errors += not ok


async def closed_loop(client: httpx.AsyncClient, source: Source, into: Phase,
                      duration: float) -> Phase:
    """``into.concurrency`` clients, each starting its next op when the last one answers."""
    start = time.perf_counter()
    end = start + duration

    async def client_loop() -> None:
        while time.perf_counter() < end and (op := source()) is not None:
            await _timed(client, op, time.perf_counter(), into)

    await asyncio.gather(*(client_loop() for _ in range(into.concurrency or 1)))
    return into.finish(time.perf_counter() - start)


async def open_loop(clients: list[httpx.AsyncClient], source: Source, into: Phase,
                    duration: float) -> Phase:
    """Start ops at ``into.target_rate`` per second on a fixed schedule, whatever the answers.

    Op ``n`` goes through ``clients[n % len(clients)]``, each with connections of
    its own, as that many liaisons would: one shared pool sends nearly every
    request down its first idle connection, which the kernel put on one
    worker (97% of the server's CPU on one of two workers, measured).
    """
    rate = into.target_rate or 1.0
    start = time.perf_counter() + 0.05
    tasks: list[asyncio.Task[None]] = []
    for n in range(max(1, int(rate * duration))):
        due = start + n / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -0.005:
            into.late_starts += 1
        op = source()
        if op is None:
            break
        tasks.append(asyncio.create_task(_timed(clients[n % len(clients)], op, due, into)))
    if tasks:
        _, late = await asyncio.wait(tasks, timeout=duration + 60)
        for task in late:  # unanswered a minute after the schedule ended: count as errors
            task.cancel()
        into.errors += len(late)
    return into.finish(time.perf_counter() - start)


def fsync_latency(directory: Path, seconds: float = 5.0) -> dict[str, float]:
    """The disk's fsync latency where the server keeps its data: p50, p99 and max in ms.

    Every commit waits for one (SQLite's WAL, PostgreSQL's), so a disk whose
    fsync now and then takes tens of milliseconds sets a floor under p99.
    """
    times: list[float] = []
    fd, name = tempfile.mkstemp(dir=directory, prefix=".fsync-probe-")
    try:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            os.write(fd, b"\0" * 8192)
            start = time.perf_counter()
            os.fsync(fd)
            times.append(time.perf_counter() - start)
            time.sleep(0.005)
    finally:
        os.close(fd)
        os.unlink(name)
    times.sort()
    return {"p50_ms": round(_pct(times, 50) * 1e3, 2), "p99_ms": round(_pct(times, 99) * 1e3, 2),
            "max_ms": round(times[-1] * 1e3, 2), "samples": len(times)}


def _cpu_seconds(pids: list[int]) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (stat fields 14, 15)
    return total / ticks


@contextmanager
def _profiled(server: RunningServer, profile_dir: Path | None, name: str,
              seconds: float) -> Iterator[None]:
    """py-spy every worker of ``server`` for ``seconds`` while the block runs (if asked)."""
    spies: list[subprocess.Popen[bytes]] = []
    if profile_dir is not None:
        profile_dir.mkdir(parents=True, exist_ok=True)
        spy = Path(sys.executable).parent / "py-spy"
        for pid in server.worker_pids():
            out = profile_dir / f"{name}-{pid}.txt"
            spies.append(subprocess.Popen(
                [str(spy), "record", "--pid", str(pid), "--duration", str(math.ceil(seconds)),
                 "--rate", "100", "--gil", "--format", "raw", "-o", str(out)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    try:
        yield
    finally:
        for process in spies:
            try:
                process.wait(timeout=seconds + 30)
            except subprocess.TimeoutExpired:
                process.kill()


class Runner:
    """Runs the phases of one backend against one running server."""

    def __init__(self, args: argparse.Namespace, server: RunningServer, backend: str,
                 log_level: str) -> None:
        self.args, self.server = args, server
        self.backend, self.log_level = backend, log_level
        self.results: list[Phase] = []

    def _client(self, connections: int) -> httpx.AsyncClient:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        return httpx.AsyncClient(base_url=self.server.url, limits=limits, timeout=60.0)

    async def _measure(self, name: str, mode: str, source: Source, per_op: int,
                       rate: float | None = None, warmup: bool = False) -> Phase:
        phase = Phase(self.backend, self.log_level, name, mode, per_op,
                      concurrency=self.args.concurrency if mode == "closed" else None,
                      target_rate=rate)
        duration = WARMUP_SECONDS if warmup else self.args.duration
        pids = self.server.worker_pids()
        per_worker, client_cpu = [_cpu_seconds([pid]) for pid in pids], time.process_time()
        profile = None if warmup or mode != "closed" else self.args.profile
        tag = f"{self.backend}-{self.log_level}-{name}"
        # Closed: one pool of C connections; open: C clients (see open_loop).
        pools = ([self.args.concurrency] if mode == "closed"
                 else [OPEN_CONNECTIONS] * self.args.concurrency)
        async with AsyncExitStack() as stack:
            clients = [await stack.enter_async_context(self._client(n)) for n in pools]
            with _profiled(self.server, profile, tag, duration):
                if mode == "closed":
                    await closed_loop(clients[0], source, phase, duration)
                else:
                    await open_loop(clients, source, phase, duration)
        spent = [_cpu_seconds([pid]) - before for pid, before in zip(pids, per_worker,
                                                                      strict=True)]
        phase.server_cpu_s = sum(spent)
        if phase.server_cpu_s > 0:
            phase.busiest_worker_share = max(spent) / phase.server_cpu_s
        phase.server_cpu_ms_per_op = phase.server_cpu_s * 1e3 / max(phase.ops, 1)
        phase.client_cpu_s = time.process_time() - client_cpu
        if not warmup:
            self.results.append(phase)
            print(_row(phase), flush=True)
        return phase

    async def trivial(self) -> float:
        """``GET /healthz``: closed loop, then open loop at half its peak; returns the peak."""
        def source() -> Op:
            return healthz_op
        await self._measure("healthz", "closed", source, 1, warmup=True)
        peak = (await self._measure("healthz", "closed", source, 1)).ops_per_s
        await self._measure("healthz", "open", source, 1, rate=peak / 2)
        return peak

    async def submissions(self, exchange: Exchange, name: str, how: str) -> None:
        """Closed then open loop of submissions, every packet sealed beforehand."""
        per_op = REQUESTS[how]
        warm = await self._packets(exchange, 4 * self.args.concurrency, how)
        estimate = await self._measure(name, "closed", self._submit_source(exchange, warm, how),
                                       per_op, warmup=True)
        # Enough for the whole run at 1.5 x the warm-up rate (it runs out? the run is cut short).
        need = int(estimate.ops_per_s * self.args.duration * 1.5) + self.args.concurrency
        packets = await self._packets(exchange, need, how)
        peak = await self._measure(name, "closed", self._submit_source(exchange, packets, how),
                                   per_op)
        rate = max(peak.ops_per_s / 2, 1.0)
        packets = await self._packets(exchange, int(rate * self.args.duration) + 1, how)
        await self._measure(name, "open", self._submit_source(exchange, packets, how),
                            per_op, rate=rate)

    def _submit_source(self, exchange: Exchange,
                       packets: collections.deque[tuple[Liaison, SealedPacket]],
                       how: str) -> Source:
        def source() -> Op | None:
            if not packets:
                return None
            sender, sealed = packets.popleft()
            return submit_op(exchange, sender, sealed, how)
        return source

    async def _packets(self, exchange: Exchange, count: int,
                       how: str) -> collections.deque[tuple[Liaison, SealedPacket]]:
        """Seal ``count`` packets; for POST-only runs, upload their blobs now (unmeasured)."""
        packets = exchange.seal(count)
        if how == "uploaded":
            async with self._client(self.args.concurrency) as client:
                pending = iter(list(packets))

                async def uploader() -> None:
                    for sender, sealed in pending:
                        if not await _upload(client, sender, sealed):
                            raise RuntimeError("a blob upload failed")

                await asyncio.gather(*(uploader() for _ in range(self.args.concurrency)))
        return packets

    async def retrievals(self, exchange: Exchange) -> None:
        """Closed then open loop of ``GET /v1/packets/{id}`` by recipients."""
        def source() -> Op:
            return retrieve_op(exchange)
        await self._measure("retrieve", "closed", source, 1, warmup=True)
        peak = await self._measure("retrieve", "closed", source, 1)
        await self._measure("retrieve", "open", source, 1, rate=max(peak.ops_per_s / 2, 1.0))


# -- runs and report ------------------------------------------------------------------


async def run_phases(args: argparse.Namespace, server: RunningServer, exchange: Exchange,
                     backend: str, log_level: str) -> list[Phase]:
    """Every phase against one running server."""
    runner = Runner(args, server, backend, log_level)
    wanted = set(args.phases.split(","))
    await runner.trivial()
    for name, how in SUBMISSIONS.items():
        if name in wanted:
            await runner.submissions(exchange, name, how)
    if "retrieve" in wanted:
        if not exchange.submitted:  # something to retrieve
            await runner.submissions(exchange, "submit-post", "uploaded")
        await runner.retrievals(exchange)
    return runner.results


def run_backend(args: argparse.Namespace, backend: str, log_level: str) -> list[Phase]:
    """Start a fresh server on ``backend``, enrol the exchange, run every phase."""
    workers = 1 if backend == "sqlite" else 2
    with tempfile.TemporaryDirectory(prefix="cadena-bench-") as tmp, ExitStack() as stack:
        url = None
        if backend == "postgresql":
            url = create_postgres_database(args.postgres_url)
            stack.callback(drop_postgres_database, args.postgres_url, url)
        env = server_env(Path(tmp) / "data", url, log_level=log_level, extra=UNLIMITED)
        coordinator = Liaison("coord", LiaisonKeys.generate())
        bootstrap(env, coordinator)
        server = stack.enter_context(serve(env, workers=workers))
        with httpx.Client(base_url=server.url, timeout=30.0) as http:
            exchange = enrol(http, coordinator, args.message_bytes)
        print(f"\n== {backend}, {workers} worker(s), CADENA_LOG_LEVEL={log_level}, "
              f"server pid {server.pid}, workers {server.worker_pids()} ==", flush=True)
        print(_header(), flush=True)
        return _run_async(run_phases(args, server, exchange, backend, log_level))


def _run_async(coro: Awaitable[list[Phase]]) -> list[Phase]:
    async def main() -> list[Phase]:
        return await coro
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main())
    return uvloop.run(main())


COLUMNS = ("phase", "mode", "load", "ops/s", "req/s", "p50 ms", "p99 ms", "max ms", "err",
           "srv cpu", "srv ms/op", "busiest wkr", "cli cpu", "load1")


def _cells(cells: tuple[str, ...]) -> str:
    return " ".join(f"{c:>{13 if i == 0 else 11}}" for i, c in enumerate(cells))


def _header() -> str:
    return _cells(COLUMNS)


def _row(p: Phase) -> str:
    load = f"C={p.concurrency}" if p.mode == "closed" else f"{p.target_rate or 0:.0f}/s"
    cells = (p.phase, p.mode, load, f"{p.ops_per_s:.1f}", f"{p.requests_per_s:.1f}",
             f"{p.p50_ms:.1f}", f"{p.p99_ms:.1f}", f"{p.max_ms:.1f}", str(p.errors),
             f"{p.server_cpu_s:.1f}s", f"{p.server_cpu_ms_per_op:.1f}",
             f"{100 * p.busiest_worker_share:.0f}%", f"{p.client_cpu_s:.1f}s",
             f"{p.loadavg_1m:.2f}")
    return _cells(cells)


def verdicts(results: list[Phase]) -> list[dict[str, Any]]:
    """Each target, per backend and log level: the measured ratio or p99 and whether it holds."""
    out: list[dict[str, Any]] = []
    keys = sorted({(p.backend, p.log_level) for p in results})
    for backend, level in keys:
        mine = {(p.phase, p.mode): p for p in results if (p.backend, p.log_level) == (backend,
                                                                                        level)}
        reference = mine[("healthz", "closed")].requests_per_s
        for name, share in (TARGETS | INFO).items():
            closed, opened = mine.get((name, "closed")), mine.get((name, "open"))
            if closed is None or opened is None or reference <= 0:
                continue
            target = name in TARGETS
            for what, value in (("req/s vs healthz", closed.requests_per_s / reference),
                                ("ops/s vs healthz", closed.ops_per_s / reference)):
                if what.startswith("ops") and closed.requests_per_op == 1:
                    continue
                out.append({"backend": backend, "log_level": level, "phase": name,
                            "measure": what, "value": round(value, 3), "target": share,
                            "informational": not target,
                            "ok": value >= share and closed.errors == 0})
            cpu_ref = mine[("healthz", "closed")].server_cpu_ms_per_op
            if target and cpu_ref > 0 and closed.server_cpu_ms_per_op > 0:
                # Not a target: the ratio a server-bound reference would give (the
                # closed-loop healthz is bound by this load generator's CPU).
                out.append({"backend": backend, "log_level": level, "phase": name,
                            "measure": "srv CPU healthz/op",
                            "value": round(cpu_ref / closed.server_cpu_ms_per_op, 3),
                            "target": share, "informational": True,
                            "ok": cpu_ref / closed.server_cpu_ms_per_op >= share})
            out.append({"backend": backend, "log_level": level, "phase": name,
                        "measure": "open-loop p99 ms", "value": round(opened.p99_ms, 1),
                        "target": P99_TARGET_MS, "informational": not target,
                        "ok": opened.p99_ms <= P99_TARGET_MS and opened.errors == 0})
    return out


def run_bursts(args: argparse.Namespace) -> list[burst.BurstResult]:
    """The burst phase on every backend and log level, each report printed as it ends."""
    results: list[burst.BurstResult] = []
    for backend in args.backends.split(","):
        for level in args.log_levels.split(","):
            result = burst.run(backend.strip(), level.strip(), args.postgres_url)
            print(burst.report(result), flush=True)
            results.append(result)
    return results


def run_server_bound(args: argparse.Namespace) -> None:
    """wrk against each configuration (``bench/_serverbound.py``); figures printed and saved."""
    print(f"{os.cpu_count()} CPUs shared by wrk and the server (and anything else running); "
          f"load average {os.getloadavg()}; wrk -t1 -c{args.concurrency}")
    extra = UNLIMITED | dict(item.split("=", 1) for item in args.server_env)
    runs = serverbound.run_all(args, extra)
    print(f"load average at the end: {os.getloadavg()}")
    if args.json:
        args.json.write_text(json.dumps({"results": [r.to_json() for r in runs]}, indent=2))


def main() -> None:
    """Parse arguments, run every backend and log level, print and save the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--message-bytes", type=int, default=4096)
    parser.add_argument("--log-levels", default="warning",
                        help="CADENA_LOG_LEVEL values to run, e.g. warning,info")
    parser.add_argument("--postgres-url", default=os.environ.get(
        "CADENA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
        help="a database from which the benchmark may create and drop others")
    parser.add_argument("--phases", default=",".join([*SUBMISSIONS, "retrieve"]),
                        help="the phases to run besides healthz (the reference), e.g. "
                             "retrieve; 'burst' (not in the default) runs the burst phase")
    parser.add_argument("--burst-only", action="store_true",
                        help="run only the burst phase (same as --phases burst)")
    parser.add_argument("--json", type=Path, help="write the figures as JSON here")
    parser.add_argument("--server-bound", action="store_true",
                        help="drive the server with wrk instead (bench/_serverbound.py)")
    parser.add_argument("--configs", default="sqlite-1,pg-1,pg-2",
                        help="server-bound: backend-workers to run, e.g. sqlite-1,pg-2")
    parser.add_argument("--wrk-phases", default=",".join(serverbound.PHASES),
                        help="server-bound: phases to run")
    parser.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                        help="server-bound: a CADENA_* variable for the server, e.g. "
                             "CADENA_GIL_SWITCH_INTERVAL_MS=5 (repeatable)")
    parser.add_argument("--profile", type=Path, help="py-spy raw profiles of closed loops here")
    args = parser.parse_args()
    if args.server_bound:
        run_server_bound(args)
        return
    if args.burst_only:
        args.phases = "burst"
    measured = set(args.phases.split(",")) - {"burst"}
    meta = {"cpus": os.cpu_count(), "python": platform.python_version(),
            "loadavg_start": os.getloadavg(), "concurrency": args.concurrency,
            "duration_s": args.duration, "message_bytes": args.message_bytes,
            "note": "client and server share the machine's CPUs; ops/s of submit-full "
                    "count whole submissions (2 uploads + POST), req/s its HTTP requests; "
                    "submit-inline sends the streams in the POST (one request)"}
    print(f"{meta['cpus']} CPUs shared by the load generator (this process) and the server; "
          f"load average {meta['loadavg_start']}")
    meta["fsync"] = fsync_latency(Path(tempfile.gettempdir()))
    print(f"fsync of 8 KiB in {tempfile.gettempdir()} (where runs keep their data), "
          f"{meta['fsync']['samples']} over 5 s: p50 {meta['fsync']['p50_ms']} ms, "
          f"p99 {meta['fsync']['p99_ms']} ms, max {meta['fsync']['max_ms']} ms")
    results: list[Phase] = []
    for backend in args.backends.split(",") if measured else []:
        for level in args.log_levels.split(","):
            results += run_backend(args, backend.strip(), level.strip())
    bursts = run_bursts(args) if "burst" in args.phases.split(",") else []
    meta["loadavg_end"] = os.getloadavg()
    checks = verdicts(results)
    print("\ntargets:" if checks else "")
    for c in checks:
        verdict = "ok" if c["ok"] else "below" if c["informational"] else "MISSED"
        print(f"  {c['backend']:>10} {c['log_level']:>7} {c['phase']:>13} {c['measure']:>17}: "
              f"{c['value']:>7} ({'info' if c['informational'] else 'target'} {c['target']}) "
              f"{verdict}")
    print(f"load average at the end: {meta['loadavg_end']}")
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "results": [p.to_json() for p in results],
                                         "targets": checks,
                                         "burst": [b.to_json() for b in bursts]}, indent=2))


if __name__ == "__main__":
    main()
