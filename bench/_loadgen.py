"""A cheap HTTP/1.1 load generator for the burst: raw sockets, first-byte times, worker processes.

Not a test. ``bench/burst.py`` first fired its burst with ``httpx`` from one
asyncio process; that process spent about as much CPU as the burst lasted
(6.4 s in 6.5 s), so the latencies it printed were mostly its own queue. Here
each request is one ``asyncio.open_connection`` socket, one pre-built
request (``Connection: close``) written in one call, and a reader that parses
nothing but the status line and the headers, reads a non-streaming body up
to its ``Content-Length`` (a refusal's problem ``type`` classifies it), and
holds an event stream open for ``hold`` seconds, discarding what comes.

The shots are spread over ``processes`` worker processes (``multiprocessing``
spawn: the parent runs an event loop and threads, which ``fork`` would copy
half-way). Each one starts (imports), says it is ready, and is then given one
wall-clock start time common to all, so that no worker's start-up delays
another's share; it fires its whole share at that moment and sends back one
:class:`Answer` per shot and the CPU it spent firing.

Each answer carries two times for the same end point, the status line:

- ``server_s``: from the request's bytes written (the connection is open by
  then) to its status line: the server's wait, accept queue included, plus
  this worker's delay in noticing the answer, which is at most its connect
  phase (``connect_s``: tens of ms while it opens its whole share at once)
  and nothing once that is done;
- ``from_start_s``: from the common start to its status line: the same plus
  however long this worker took to get round to opening that connection.

Every shot is bounded by ``timeout`` (connect, write, head and body), a
stream's hold comes on top, and a worker's whole share by ``deadline``; the
parent gives up on a worker that has not answered by then and counts its
share as timeouts, so a frozen server cannot hang the bench.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any
from urllib.parse import urlsplit

READY_TIMEOUT = 60.0
"""Seconds a worker process may take to start (a spawned interpreter imports the bench)."""
START_LEAD = 0.25
"""Seconds between telling the workers the start time and that time: each must be waiting."""
BODY_KEPT = 64 * 1024
"""Bytes of a non-2xx body kept for classification; a problem document is far smaller."""
READ_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Shot:
    """One request to fire: its kind (a label), pre-built bytes, and whether it is a stream."""

    kind: str
    request: bytes
    stream: bool


@dataclass(frozen=True)
class Answer:
    """What one shot got. ``status`` is None on a failure (``"timeout"`` or ``"conn err"``)."""

    kind: str
    status: int | None
    failure: str | None
    body: bytes  # a non-2xx answer's body (up to BODY_KEPT); empty otherwise
    server_s: float  # bytes written (or connect started, if never written) -> status line
    from_start_s: float  # the common start -> status line (or the failure)
    connect_s: float  # connect started -> bytes written (NaN if never written)


@dataclass(frozen=True)
class Plan:
    """A worker's share: where to fire, what, and its bounds (pickled to the worker)."""

    host: str
    port: int
    shots: tuple[Shot, ...]
    hold: float
    timeout: float
    deadline: float


@dataclass(frozen=True)
class Fired:
    """Every answer of a burst, the generator's CPU (all workers) and the burst's seconds."""

    answers: list[Answer]
    cpu_s: float
    seconds: float
    processes: int


def request_bytes(url: str, path: str, headers: dict[str, str]) -> bytes:
    """A complete ``GET path`` for the server at ``url``, one connection only."""
    parts = urlsplit(url)
    lines = [f"GET {path} HTTP/1.1", f"Host: {parts.netloc}",
             *(f"{name}: {value}" for name, value in headers.items()), "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# -- one shot (in a worker) ----------------------------------------------------------------


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, int | None, float]:
    """The status, the Content-Length (None if absent) and when the status line came."""
    line = await reader.readline()
    answered = time.perf_counter()
    version, _, rest = line.partition(b" ")
    if not version.startswith(b"HTTP/"):
        raise ConnectionError(f"no status line: {line[:40]!r}")
    status, length = int(rest[:3]), None
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return status, length, answered


async def _read_body(reader: asyncio.StreamReader, length: int | None, keep: bool) -> bytes:
    """Read the body (to Content-Length, else to the end); keep its start only if asked."""
    kept, left = bytearray(), length
    while left is None or left > 0:
        chunk = await reader.read(READ_CHUNK if left is None else min(left, READ_CHUNK))
        if not chunk:
            if left:  # the connection ended inside the body
                raise asyncio.IncompleteReadError(bytes(kept), left)
            break
        if left is not None:
            left -= len(chunk)
        if keep and len(kept) < BODY_KEPT:
            kept += chunk[:BODY_KEPT - len(kept)]
    return bytes(kept)


async def _hold(reader: asyncio.StreamReader, seconds: float) -> None:
    """Keep a stream open ``seconds``, reading (and dropping) what the server sends."""
    with suppress(TimeoutError, OSError):
        async with asyncio.timeout(seconds):
            while await reader.read(READ_CHUNK):
                pass


async def shoot(plan: Plan, shot: Shot, start: float) -> Answer:
    """Fire ``shot`` on a connection of its own; ``start`` is the common start (perf_counter)."""
    opened = time.perf_counter()
    written: float | None = None
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(plan.timeout):
            reader, writer = await asyncio.open_connection(plan.host, plan.port)
            writer.write(shot.request)  # a fresh socket's buffer takes it whole, at once
            written = time.perf_counter()
            status, length, answered = await _read_head(reader)
            success = 200 <= status < 300
            body = b""
            if not (shot.stream and success):
                body = await _read_body(reader, length, keep=not success)
        if shot.stream and success:
            await _hold(reader, plan.hold)
        return Answer(shot.kind, status, None, body, answered - written, answered - start,
                      written - opened)
    except TimeoutError:
        failure = "timeout"
    except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        failure = "conn err"
    finally:
        if writer is not None:
            writer.close()  # no wait_closed(): nothing is left to learn from this socket
    now = time.perf_counter()
    return Answer(shot.kind, None, failure, b"", now - (written or opened), now - start,
                  (written - opened) if written else float("nan"))


Fire = tuple[list[Answer], float, float]
"""A worker's answers, CPU seconds and wall seconds."""


async def _fire(plan: Plan, start_at: float) -> Fire:
    """Wait for the wall-clock ``start_at``, fire every shot, collect the answers.

    Returns the answers, this process's CPU seconds and the wall seconds from
    the start to the last answer. Shots still out at ``plan.deadline`` count as
    timeouts.
    """
    start = time.perf_counter() + (start_at - time.time())
    await asyncio.sleep(max(0.0, start - time.perf_counter()))
    cpu = time.process_time()
    tasks = {asyncio.create_task(shoot(plan, shot, start)): shot for shot in plan.shots}
    _, late = await asyncio.wait(tasks, timeout=plan.deadline)
    for task in late:
        task.cancel()
    await asyncio.gather(*late, return_exceptions=True)
    seconds = time.perf_counter() - start
    answers = [task.result() if task not in late else _late(tasks[task], plan.deadline)
               for task in tasks]
    return answers, time.process_time() - cpu, seconds


def _late(shot: Shot, seconds: float) -> Answer:
    """A shot that never ended (past a deadline): a timeout after ``seconds``."""
    return Answer(shot.kind, None, "timeout", b"", seconds, seconds, float("nan"))


def _worker(conn: Connection, plan: Plan) -> None:
    """A worker process: ready, wait for the start time, fire, send back what happened."""
    conn.send("ready")
    start_at = float(conn.recv())
    conn.send(_run(_fire(plan, start_at)))
    conn.close()


def _run(work: Coroutine[Any, Any, Fire]) -> Fire:
    """Run ``work`` on uvloop if installed (a cheaper loop per connection), else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(work)
    return uvloop.run(work)


# -- the parent ----------------------------------------------------------------------------


@contextmanager
def generators(url: str, shots: list[Shot], *, processes: int, hold: float, timeout: float,
               deadline: float) -> Iterator[Callable[[], Fired]]:
    """Start ``processes`` workers, each ready with its share; the callable fires (blocking).

    Starting them first lets the caller begin its own measurements (the probe)
    only once every worker is waiting, so that their start-up is not counted.
    Each worker gets a contiguous slice of ``shots``, so each share keeps the
    order and the mix of the whole (dealing round-robin would give every
    stream of a one-in-six pattern to the same worker). Every worker is gone
    when the block ends, killed if need be.
    """
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    context = multiprocessing.get_context("spawn")
    workers: list[tuple[BaseProcess, Connection, Plan]] = []

    def go() -> Fired:
        start_at = time.time() + START_LEAD
        for _, conn, _ in workers:
            conn.send(start_at)
        return _collect(workers, start_at + deadline + 5.0)

    try:
        for n in range(processes):
            share = shots[n * len(shots) // processes:(n + 1) * len(shots) // processes]
            plan = Plan(host, port, tuple(share), hold, timeout, deadline)
            mine, theirs = context.Pipe()
            child = context.Process(target=_worker, args=(theirs, plan), daemon=True,
                                    name=f"burst-generator-{n}")
            child.start()
            theirs.close()  # the child's end: EOF here if the child dies
            workers.append((child, mine, plan))
        for process, conn, _ in workers:
            _await_ready(process, conn)
        yield go
    finally:
        for process, conn, _ in workers:
            conn.close()
            process.join(timeout=1.0)
            if process.is_alive():
                process.kill()
                process.join()


def _await_ready(process: BaseProcess, conn: Connection) -> None:
    """Wait (bounded) for a worker's "ready"; a worker that died or hangs stops the run."""
    try:
        if conn.poll(READY_TIMEOUT) and conn.recv() == "ready":
            return
    except (EOFError, OSError):
        pass
    raise RuntimeError(f"load generator {process.name} did not start "
                       f"(exit code {process.exitcode})")


def _collect(workers: list[tuple[BaseProcess, Connection, Plan]], until: float) -> Fired:
    """Each worker's answers by wall-clock ``until``; a silent worker's share are timeouts."""
    answers: list[Answer] = []
    cpu, seconds = 0.0, 0.0
    for _, conn, plan in workers:
        try:
            got = conn.poll(max(0.0, until - time.time()))
            mine, spent, took = conn.recv() if got else ([], 0.0, plan.deadline)
        except (EOFError, OSError):  # the worker died
            mine, spent, took = [], 0.0, plan.deadline
        answers += mine or [_late(shot, plan.deadline) for shot in plan.shots]
        cpu, seconds = cpu + spent, max(seconds, took)
    return Fired(answers, cpu, seconds, len(workers))
