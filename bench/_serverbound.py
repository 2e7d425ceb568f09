"""The server-bound mode of ``bench/api.py``: wrk drives the server, /proc counts its CPU.

Not a test. ``bench/api.py --server-bound`` (issue 21) starts a server per
configuration (SQLite with one worker, PostgreSQL with one and with two),
enrols the benchmark's exchange, and drives each phase with **wrk** (Debian's
``wrk`` 4.1, one thread, ``--concurrency`` connections), a C load generator, so
that the server, not the client, is the limit:

- ``healthz``: ``GET /healthz``, the reference without a database;
- ``submit``: ``POST /v1/packets`` with both streams inline, every body a
  distinct packet sealed beforehand (``bench/wrk/requests.lua`` sends each
  line of a file once);
- ``retrieve``: ``GET /v1/packets/{id}`` by a recipient (key delivery);
- ``list``: ``GET /v1/packets?limit=50``, a recipient's inbox page.

Each phase: a 2 s warm-up, then closed loop for ``--duration`` s (req/s, p50,
p99), then a paced run at half that peak: wrk with a Lua ``delay`` of an
exponentially distributed think time per connection (a closed loop with think
time, not wrk2's constant-rate open loop: wrk2 is not in Debian), whose p99
is the "open-loop p99" of the table, at the rate wrk reports.

Server CPU per request is read from ``/proc`` (utime + stime of the server's
processes: the supervisor and its workers) and, on PostgreSQL, of the
database's backends (the ``pg_stat_activity`` rows of the benchmark's
database; the WAL writer and checkpointer are not counted). On PostgreSQL a
sampler reads ``pg_stat_activity`` every 5 ms during the closed loop:
``lock wait`` is the mean number of backends waiting on a heavyweight lock
(the ledger head row: nothing else of the hot paths locks) divided by the
connections in flight, i.e. by Little's law the share of a request's time
spent waiting for the ledger head. With group commit (ADR 0023) the server
also writes its committers' counters (``CADENA_KERNEL_TIMING_DIR``): ``writer
wait`` is the share of request time spent waiting for a turn at the group's
writer (within a process, the ledger head), ``commit wait`` the share spent
waiting, done, for the group's COMMIT, ``per group`` the mean members of a
group. A server without these counters (an older revision) ignores the variable.

Every run starts once the server is idle (:func:`settle`): wrk stops with
its connections' requests in flight, which the server finishes afterwards,
and their CPU would otherwise count in the next run. ``bench/synapse.py``
drives Matrix Synapse beside a Cadena server started here (:func:`cadena`).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy import make_url

from bench._server import (
    Liaison,
    RunningServer,
    b64,
    bootstrap,
    create_postgres_database,
    drop_postgres_database,
    serve,
    server_env,
)
from crypto import LiaisonKeys

LUA = Path(__file__).resolve().parent / "wrk" / "requests.lua"
WRK = "wrk"
WARMUP_SECONDS = 2
CONFIGS = (("sqlite", 1), ("postgresql", 1), ("postgresql", 2))
PHASES = ("healthz", "submit", "retrieve", "list")
PREPARED = 64
"""Packets submitted before the measured phases, for retrieve and list."""
IDLE_SHARE = 0.1
"""A server is idle when its processes use less than this share of one core (over 0.25 s)."""


@dataclass
class WrkRun:
    """One wrk run and the server's CPU during it."""

    config: str
    phase: str
    mode: str  # "closed" or "paced"
    requests: int = 0
    non_2xx: int = 0
    socket_errors: int = 0
    seconds: float = 0.0
    req_per_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    app_cpu_ms_per_req: float = 0.0
    db_cpu_ms_per_req: float = 0.0
    lock_wait_share: float | None = None
    writer_wait_share: float | None = None
    commit_wait_share: float | None = None
    members_per_group: float | None = None
    gap_ms: float = 0.0

    @property
    def cpu_ms_per_req(self) -> float:
        """Server CPU per request, database included."""
        return self.app_cpu_ms_per_req + self.db_cpu_ms_per_req

    def to_json(self) -> dict[str, Any]:
        """The figures, rounded."""
        data = asdict(self)
        data["cpu_ms_per_req"] = self.cpu_ms_per_req
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in data.items()}


# -- /proc and pg_stat_activity ---------------------------------------------------------


def _ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])  # utime, stime


def cpu_snapshot(pids: list[int]) -> dict[int, int]:
    """Clock ticks (user + system) each of ``pids`` has spent so far."""
    return {pid: _ticks(pid) for pid in pids}


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Linux ``/proc``); those that vanish are left out."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                todo += [int(child) for child in (task / "children").read_text().split()]
            except OSError:
                continue
    return sorted(set(found))


def settle(pids: Callable[[], list[int]], *, timeout: float = 20.0) -> float:
    """Wait until the processes of ``pids()`` are idle; the seconds waited.

    wrk stops with ``--concurrency`` requests in flight, which the server
    still finishes after the run: without this wait their CPU (and their hold
    on a busy server) would fall into the next run.
    """
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        watched = pids()
        before = cpu_snapshot(watched)
        time.sleep(0.25)
        if cpu_seconds(before, cpu_snapshot(watched)) < IDLE_SHARE * 0.25:
            break
    return time.monotonic() - start


def cpu_seconds(before: dict[int, int], after: dict[int, int]) -> float:
    """CPU seconds between two snapshots (a pid new in ``after`` counts from zero)."""
    ticks = sum(t - before.get(pid, 0) for pid, t in after.items())
    return ticks / os.sysconf("SC_CLK_TCK")


def _kernel_timing(directory: Path) -> tuple[float, float, int, int]:
    """The group committers' counters summed over the server's processes (ADR 0023)."""
    totals = [0.0, 0.0, 0.0, 0.0]
    for path in directory.glob("*") if directory.is_dir() else []:
        try:
            values = [float(v) for v in path.read_text().split()]
        except (OSError, ValueError):
            continue
        if len(values) == len(totals):  # not a file caught half written
            totals = [a + b for a, b in zip(totals, values, strict=True)]
    return totals[0], totals[1], int(totals[2]), int(totals[3])


@contextmanager
def profiled(directory: Path, name: str, pids: list[int]) -> Iterator[None]:
    """py-spy raw profiles of ``pids`` (the workers) while the block runs, in ``directory``:
    only the thread holding the interpreter lock is sampled (its CPU, not its waits)."""
    directory.mkdir(parents=True, exist_ok=True)
    program = str(Path(sys.executable).with_name("py-spy"))
    spies = [subprocess.Popen(  # noqa: S603 - py-spy from the venv, our own arguments
        [program, "record", "--pid", str(pid), "--threads", "--gil", "--format", "raw",
         "--rate", "200", "--output", str(directory / f"{name}-{pid}.txt")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for pid in pids]
    time.sleep(0.5)  # attached before the load starts
    try:
        yield
    finally:
        for process in spies:
            process.send_signal(2)  # SIGINT: py-spy writes its file and exits
        for process in spies:
            process.wait(timeout=30)


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class Database:
    """The PostgreSQL side of a run: its backends' pids and the lock-wait sampler."""

    def __init__(self, url: str) -> None:
        """Watch the database of ``url`` through a connection of its own."""
        self.name = str(make_url(url).database)
        self.conn = psycopg.connect(_libpq(url), autocommit=True)

    def backends(self) -> list[int]:
        """The pids of the backends connected to the database (this one excluded)."""
        rows = self.conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s "
                                 "AND pid <> pg_backend_pid()", (self.name,)).fetchall()
        return [int(r[0]) for r in rows]

    @contextmanager
    def lock_sampler(self, into: list[int]) -> Iterator[None]:
        """Append, every 5 ms, how many backends wait for a heavyweight lock."""
        stop = threading.Event()
        url = self.conn.info.dsn

        def sample() -> None:
            with psycopg.connect(url, autocommit=True) as conn:
                query = ("SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                         "AND wait_event_type = 'Lock'")
                while not stop.wait(0.005):
                    into.append(int(conn.execute(query, (self.name,)).fetchone()[0]))  # type: ignore[index]

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def analyze(self) -> None:
        """Bring the planner's statistics up to date, as autovacuum does in a running service.

        A phase after a burst of submissions would otherwise be planned on the
        statistics of a nearly empty database (autovacuum's next pass is up to a
        minute away): the listing then read every packet of the channel instead of
        walking ``ix_packets_submitted`` to its 50th row.
        """
        self.conn.execute("ANALYZE")

    def close(self) -> None:
        """Close the watching connection."""
        self.conn.close()


# -- wrk --------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def parse_wrk(out: str, run: WrkRun) -> WrkRun:
    """Fill ``run`` from wrk's ``--latency`` report."""
    if m := re.search(r"(\d+) requests in ([\d.]+)(\w+),", out):
        run.requests = int(m.group(1))
        run.seconds = _ms(m.group(2) + m.group(3)) / 1e3
    if m := re.search(r"Requests/sec:\s+([\d.]+)", out):
        run.req_per_s = float(m.group(1))
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        run.non_2xx = int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                      out):
        run.socket_errors = sum(int(g) for g in m.groups())
    for pct, attr in (("50", "p50_ms"), ("99", "p99_ms")):
        if m := re.search(rf"^\s+{pct}(?:\.000)?%\s+([\d.]+\w+)", out, re.MULTILINE):
            setattr(run, attr, _ms(m.group(1)))
    return run


def wrk(url: str, *script_args: str | Path, connections: int, seconds: float,
        gap_ms: float = 0.0, script: Path = LUA) -> str:
    """Run wrk (one thread) with ``script`` and its arguments (for ``LUA``: the request file).

    Returns wrk's ``--latency`` report.
    """
    env = {**os.environ, "WRK_GAP_MS": f"{gap_ms:.3f}"}
    cmd = [WRK, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
           "--timeout", "10s", "-s", str(script), url, "--", *map(str, script_args)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed: {done.stderr or done.stdout}")
    return done.stdout


# -- the exchange, prepared --------------------------------------------------------------


def _line(method: str, path: str, token: str | None, body: str = "") -> str:
    return f"{method}\t{path}\t{token or ''}\t{body}\n"


def submit_lines(exchange: Any, count: int, path: Path) -> Path:
    """``count`` distinct inline submissions, round robin over the senders."""
    import json
    with path.open("w") as out:
        for sender, sealed in exchange.seal(count):
            body = json.dumps({"envelope": b64(sealed.envelope.to_bytes()),
                               "inline_streams": [{"index": i, "ciphertext": b64(s)}
                                                  for i, s in enumerate(sealed.streams)]},
                              separators=(",", ":"))
            out.write(_line("POST", "/v1/packets", sender.token, body))
    return path


def _token(person: Liaison) -> str:
    if person.token is None:
        raise RuntimeError(f"{person.id} is not logged in")
    return person.token


def read_lines(exchange: Any, path: Path, what: str) -> Path:
    """Retrieves of every prepared packet by each recipient, or their inbox pages."""
    with path.open("w") as out:
        for n, packet_id in enumerate(exchange.submitted):
            for recipient in exchange.recipients[n % 2:] + exchange.recipients[:n % 2]:
                where = f"/v1/packets/{packet_id}" if what == "retrieve" else "/v1/packets?limit=50"
                out.write(_line("GET", where, _token(recipient)))
    return path


def prepare(http: httpx.Client, exchange: Any, count: int) -> None:
    """Submit ``count`` packets through the API (retrieve and list read them)."""
    import json
    for sender, sealed in exchange.seal(count):
        body = {"envelope": b64(sealed.envelope.to_bytes()),
                "inline_streams": [{"index": i, "ciphertext": b64(s)}
                                   for i, s in enumerate(sealed.streams)]}
        answer = http.post("/v1/packets", content=json.dumps(body), headers={
            **sender.auth, "Content-Type": "application/json"})
        if answer.status_code != 201:
            raise RuntimeError(f"preparing: {answer.status_code} {answer.text}")
        exchange.submitted.append(answer.json()["id"])


# -- a configuration --------------------------------------------------------------------


class Config:
    """One running server (backend and workers) under wrk."""

    def __init__(self, args: argparse.Namespace, server: RunningServer, exchange: Any,
                 name: str, db: Database | None, tmp: Path) -> None:
        """Measure ``server`` (database ``db`` when PostgreSQL) into ``self.runs``."""
        self.args, self.server, self.exchange, self.name = args, server, exchange, name
        self.db, self.tmp = db, tmp
        self.runs: list[WrkRun] = []

    def _pids(self) -> tuple[list[int], list[int]]:
        app = [self.server.pid, *self.server.worker_pids()]
        return sorted(set(app)), (self.db.backends() if self.db is not None else [])

    def measure(self, phase: str, lines: Path, mode: str, *, seconds: float,
                gap_ms: float = 0.0, keep: bool = True) -> WrkRun:
        """One wrk run of ``lines`` once the server is idle; server and database CPU per request."""
        settle(lambda: [pid for group in self._pids() for pid in group])
        app_pids, db_pids = self._pids()
        app0, db0 = cpu_snapshot(app_pids), cpu_snapshot(db_pids)
        timing0 = _kernel_timing(self.tmp / "timing")
        samples: list[int] = []
        with ExitStack() as stack:
            if self.db is not None and mode == "closed" and keep:
                stack.enter_context(self.db.lock_sampler(samples))
            if getattr(self.args, "profile", None) and mode == "closed" and keep:
                stack.enter_context(profiled(self.args.profile, f"{self.name}-{phase}",
                                             [p for p in app_pids if p in
                                              self.server.worker_pids()] or app_pids))
            out = wrk(self.server.url, lines, connections=self.args.concurrency,
                      seconds=seconds, gap_ms=gap_ms)
        app_pids, db_pids = self._pids()
        run = parse_wrk(out, WrkRun(self.name, phase, mode, gap_ms=gap_ms))
        done = max(run.requests, 1)
        run.app_cpu_ms_per_req = cpu_seconds(app0, cpu_snapshot(app_pids)) * 1e3 / done
        run.db_cpu_ms_per_req = cpu_seconds(db0, cpu_snapshot(db_pids)) * 1e3 / done
        if samples:
            run.lock_wait_share = sum(samples) / len(samples) / self.args.concurrency
        timing = _kernel_timing(self.tmp / "timing")
        if timing[3] > timing0[3] and run.seconds > 0:
            # Little's law: the connections are always in flight in a closed loop.
            in_flight_s = self.args.concurrency * run.seconds
            run.writer_wait_share = (timing[0] - timing0[0]) / in_flight_s
            run.commit_wait_share = (timing[1] - timing0[1]) / in_flight_s
            run.members_per_group = (timing[2] - timing0[2]) / (timing[3] - timing0[3])
        if keep:
            self.runs.append(run)
            print(row(run), flush=True)
        return run

    def peak(self, phase: str) -> tuple[WrkRun, Path]:
        """Warm-up, then the closed loop: its run, and the request file for more of it."""
        seconds = self.args.duration
        if phase == "submit":
            warm = submit_lines(self.exchange, 4000, self.tmp / "warm.tsv")
            estimate = self.measure(phase, warm, "closed", seconds=WARMUP_SECONDS, keep=False)
            need = int(max(estimate.req_per_s, 100) * seconds * 2) + 1000
            lines = submit_lines(self.exchange, need, self.tmp / "submit.tsv")
            peak = self.measure(phase, lines, "closed", seconds=seconds)
            lines = submit_lines(self.exchange, int(peak.req_per_s * seconds) + 1000,
                                 self.tmp / "paced.tsv")
        else:
            lines = (self.tmp / "healthz.tsv")
            if phase == "healthz":
                lines.write_text(_line("GET", "/healthz", None))
            else:
                lines = read_lines(self.exchange, self.tmp / f"{phase}.tsv", phase)
            self.measure(phase, lines, "closed", seconds=WARMUP_SECONDS, keep=False)
            peak = self.measure(phase, lines, "closed", seconds=seconds)
        return peak, lines

    def phase(self, phase: str) -> None:
        """Warm-up, closed loop, then paced at half the closed loop's rate."""
        if self.db is not None:
            self.db.analyze()
        peak, lines = self.peak(phase)
        seconds = self.args.duration
        # About half the peak: each connection thinks twice the closed loop's mean
        # latency (C / rate) between requests; the rate wrk reports is printed.
        gap = 2 * self.args.concurrency / max(peak.req_per_s, 1.0) * 1e3
        self.measure(phase, lines, "paced", seconds=seconds, gap_ms=gap)


COLUMNS = ("config", "phase", "mode", "req/s", "p50 ms", "p99 ms", "non2xx", "app ms",
           "db ms", "cpu ms/req", "lock wait", "writer wait", "commit wait", "per group")


def _cells(cells: tuple[str, ...]) -> str:
    return " ".join(f"{c:>{12 if i < 2 else 10}}" for i, c in enumerate(cells))


def header() -> str:
    """The printed table's column names, aligned as :func:`row` aligns its cells."""
    return _cells(COLUMNS)


def row(r: WrkRun) -> str:
    """One printed line."""
    def share(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.1f}%"

    group = "-" if r.members_per_group is None else f"{r.members_per_group:.1f}"
    return _cells((r.config, r.phase, r.mode, f"{r.req_per_s:.0f}", f"{r.p50_ms:.1f}",
                   f"{r.p99_ms:.1f}", str(r.non_2xx + r.socket_errors),
                   f"{r.app_cpu_ms_per_req:.2f}", f"{r.db_cpu_ms_per_req:.2f}",
                   f"{r.cpu_ms_per_req:.2f}", share(r.lock_wait_share),
                   share(r.writer_wait_share), share(r.commit_wait_share), group))


@contextmanager
def cadena(args: argparse.Namespace, backend: str, workers: int,
           extra: dict[str, str], cwd: Path | None = None) -> Iterator[Config]:
    """A fresh server on ``backend`` with ``workers``, its exchange enrolled, until the block ends.

    ``args`` needs ``concurrency``, ``duration``, ``message_bytes`` and, for
    PostgreSQL, ``postgres_url``.
    """
    from bench.api import enrol  # the exchange of the Python-driven mode

    name = f"{'pg' if backend == 'postgresql' else 'sqlite'}-{workers}w"
    with tempfile.TemporaryDirectory(prefix="cadena-wrk-") as tmp, ExitStack() as stack:
        url = db = None
        if backend == "postgresql":
            url = create_postgres_database(args.postgres_url)
            stack.callback(drop_postgres_database, args.postgres_url, url)
        timing = Path(tmp) / "timing"
        timing.mkdir(mode=0o700)
        env = server_env(Path(tmp) / "data", url, log_level="warning",
                         extra={"CADENA_KERNEL_TIMING_DIR": str(timing), **extra})
        coordinator = Liaison("coord", LiaisonKeys.generate())
        bootstrap(env, coordinator)
        server = stack.enter_context(serve(env, workers=workers, cwd=cwd))
        if url is not None:
            db = Database(url)
            stack.callback(db.close)
        with httpx.Client(base_url=server.url, timeout=30.0) as http:
            exchange = enrol(http, coordinator, args.message_bytes)
            prepare(http, exchange, PREPARED)
        print(f"\n== {name}: server pid {server.pid}, workers {server.worker_pids()} ==",
              flush=True)
        yield Config(args, server, exchange, name, db, Path(tmp))


def run_config(args: argparse.Namespace, backend: str, workers: int,
               extra: dict[str, str]) -> list[WrkRun]:
    """A fresh server on ``backend`` with ``workers``: every phase of ``args.wrk_phases``."""
    with cadena(args, backend, workers, extra) as config:
        print(header(), flush=True)
        for phase in args.wrk_phases.split(","):
            config.phase(phase.strip())
        return config.runs


def run_all(args: argparse.Namespace, extra: dict[str, str]) -> list[WrkRun]:
    """Every configuration of ``args.configs`` (e.g. ``sqlite-1,pg-1,pg-2``)."""
    runs: list[WrkRun] = []
    for spec in args.configs.split(","):
        backend, _, workers = spec.strip().partition("-")
        runs += run_config(args, "postgresql" if backend == "pg" else "sqlite",
                           int(workers or 1), extra)
    return runs
