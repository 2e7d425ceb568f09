"""Two servers driven at the same moment: CPU per request of A and B under the same noise.

Not a test. On a shared machine the same code measured 4.5 and 7.1 ms of CPU
per submit in two rounds minutes apart (docs/operations.md), so alternating
rounds (``bench/compare.py``, ``bench/api.py --server-bound`` run twice) need
many rounds to see a 10-20% change. Here two servers, A and B, each with its
own data directory and its own wrk (one thread, ``--concurrency``
connections), run every phase *at the same time*: whatever else the machine
does slows both alike, and B / A of each round is read, not the rates.

    python bench/sidebyside.py --a abca129 --b HEAD --phases retrieve,list,submit --rounds 5
    python bench/sidebyside.py --b-env CADENA_GROUP_COMMIT=true --paced   # one tree, two settings

A side is a git revision (checked out into a temporary worktree, served with
``PYTHONPATH`` set to it), or this tree when omitted; ``--a-env`` and
``--b-env`` give a side's server a ``CADENA_*`` variable. The benchmark's
client (enrolment, sealed packets, wrk's request files) is this tree's
``bench/_serverbound.py``, so both sides get byte-identical requests.

Per round and phase it prints each side's req/s, server CPU ms per request
(database included on PostgreSQL) and p99, and B / A; then the median and the
range of B / A over the rounds. ``--paced`` adds a paced run per round, both
sides at the same rate, half the lower of their closed-loop peaks of that
round, for the p99 at the same load.
Submissions are never sent twice: every round has its own request file.
A side-by-side A / A run (both sides the same) shows the method's own spread.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _serverbound as sb
from bench.api import UNLIMITED
from bench.compare import _worktree

ROOT = Path(__file__).resolve().parent.parent
SUBMITS_PER_SECOND = 1500
"""More than one side ever submitted per second here (800 on 2026-12-08: at 400 a quick
machine ran out of distinct packets, and the replays, cheap 409s, passed for submissions)."""


@dataclass
class Side:
    """One server of the pair and the request files made for it."""

    name: str
    config: sb.Config
    files: dict[str, Path] = field(default_factory=dict)

    def pids(self) -> list[int]:
        """The server's processes and, on PostgreSQL, its database backends."""
        app, db = self.config._pids()  # noqa: SLF001 (the same process set the table counts)
        return app + db

    def lines(self, phase: str, round_no: int, seconds: float) -> Path:
        """The request file of ``phase``: a fresh one per round for submissions."""
        exchange, tmp = self.config.exchange, self.config.tmp
        if phase == "submit":
            return sb.submit_lines(exchange, int(SUBMITS_PER_SECOND * seconds) + 500,
                                   tmp / f"submit-{round_no}.tsv")
        if phase == "healthz":
            path = tmp / "healthz.tsv"
            path.write_text(sb._line("GET", "/healthz", None))  # noqa: SLF001
            return path
        if phase not in self.files:
            self.files[phase] = sb.read_lines(exchange, tmp / f"{phase}.tsv", phase)
        return self.files[phase]


def _run(side: Side, lines: Path, mode: str, seconds: float, gap_ms: float,
         into: dict[str, sb.WrkRun]) -> None:
    app_pids, db_pids = side.config._pids()  # noqa: SLF001
    app0, db0 = sb.cpu_snapshot(app_pids), sb.cpu_snapshot(db_pids)
    out = sb.wrk(side.config.server.url, lines, connections=side.config.args.concurrency,
                 seconds=seconds, gap_ms=gap_ms)
    app_pids, db_pids = side.config._pids()  # noqa: SLF001
    run = sb.parse_wrk(out, sb.WrkRun(side.name, "", mode, gap_ms=gap_ms))
    done = max(run.requests, 1)
    run.app_cpu_ms_per_req = sb.cpu_seconds(app0, sb.cpu_snapshot(app_pids)) * 1e3 / done
    run.db_cpu_ms_per_req = sb.cpu_seconds(db0, sb.cpu_snapshot(db_pids)) * 1e3 / done
    into[side.name] = run


def together(sides: list[Side], phase: str, lines: dict[str, Path], mode: str,
             seconds: float, gaps: dict[str, float]) -> dict[str, sb.WrkRun]:
    """One wrk run per side, started together once both servers are idle."""
    for side in sides:
        sb.settle(side.pids)
    runs: dict[str, sb.WrkRun] = {}
    threads = [threading.Thread(target=_run, args=(side, lines[side.name], mode, seconds,
                                                   gaps.get(side.name, 0.0), runs))
               for side in sides]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for run in runs.values():
        run.phase = phase
    return runs


@contextmanager
def _side(args: argparse.Namespace, name: str, rev: str | None, env: list[str],
          where: Path) -> Iterator[Side]:
    # Before 2026-12-07 ``serve`` started ``python -m uvicorn`` with uvicorn's
    # ``--app-dir .``: the working directory came first on sys.path, and both
    # sides ran this tree's ``app``. So each server runs in its own tree, and
    # each side prints where its ``app`` comes from.
    extra = UNLIMITED | {"PYTHONSAFEPATH": "1"} | dict(item.split("=", 1) for item in env)
    tree = ROOT
    if rev is not None:
        tree = _worktree(rev, where)
        extra["PYTHONPATH"] = str(tree)
    source = subprocess.run([sys.executable, "-c", "import app; print(app.__file__)"],
                            env={**os.environ, **extra}, capture_output=True, text=True,
                            check=True, cwd=tree).stdout.strip()
    print(f"side {name}: app from {source}", flush=True)
    with sb.cadena(args, args.backend, args.workers, extra, cwd=tree) as config:
        config.name = name
        yield Side(name, config)


def add_side_arguments(parser: argparse.ArgumentParser) -> None:
    """The two sides' options: each one's revision and variables, the backend, the workers."""
    parser.add_argument("--a", help="side A's git revision (default: this tree)")
    parser.add_argument("--b", help="side B's git revision (default: this tree)")
    parser.add_argument("--a-env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--b-env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--workers", type=int, default=1)


def _ratio_line(phase: str, mode: str, figure: str, ratios: list[float]) -> str:
    return (f"{phase:>9} {mode:>6} {figure:>12}: B/A median {statistics.median(ratios):.3f}"
            f" (range {min(ratios):.3f}-{max(ratios):.3f}, {len(ratios)} rounds)")


def main() -> None:
    """Start both sides, run the rounds, print every round and the medians of B / A."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_side_arguments(parser)
    parser.add_argument("--phases", default="retrieve,list,submit")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per run")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--message-bytes", type=int, default=4096)
    parser.add_argument("--paced", action="store_true",
                        help="also a paced run, both at half the lower peak")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="a database from which the benchmark may create and drop others")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="cadena-sbs-") as tmp, ExitStack() as stack:
        where = Path(tmp)
        stack.callback(_remove_worktrees, where)  # last, once both servers stopped
        sides = [stack.enter_context(_side(args, "A", args.a, args.a_env, where)),
                 stack.enter_context(_side(args, "B", args.b, args.b_env, where))]
        print(f"A = {args.a or 'this tree'} {' '.join(args.a_env)}; "
              f"B = {args.b or 'this tree'} {' '.join(args.b_env)}; {args.backend}, "
              f"{args.workers} worker(s), {args.concurrency} connections each", flush=True)
        for phase in phases:
            for side in sides:  # as bench/api.py --server-bound does (sb.Database.analyze)
                if side.config.db is not None:
                    side.config.db.analyze()
            warm = {s.name: s.lines(phase, -1, 2.0) for s in sides}
            together(sides, phase, warm, "closed", 2.0, {})
            for n in range(args.rounds):
                lines = {s.name: s.lines(phase, n, args.duration) for s in sides}
                runs = together(sides, phase, lines, "closed", args.duration, {})
                _report(results, phase, n, runs)
                if args.paced:
                    # Both at the same rate, half the lower peak: p99 at the same load.
                    peak = min(r.req_per_s for r in runs.values())
                    gaps = dict.fromkeys(runs, 2 * args.concurrency / max(peak, 1.0) * 1e3)
                    lines = {s.name: s.lines(phase, 1000 + n, args.duration) for s in sides}
                    _report(results, phase, n,
                            together(sides, phase, lines, "paced", args.duration, gaps))
    print("\nB / A over the rounds (CPU below 1 and req/s above 1 favour B):")
    for phase in phases:
        for mode in ("closed", "paced"):
            rows = [r for r in results if r["phase"] == phase and r["mode"] == mode]
            if not rows:
                continue
            for figure in ("req_per_s", "cpu_ms_per_req", "p99_ms"):
                ratios = [r["B"][figure] / r["A"][figure] for r in rows if r["A"][figure]]
                if ratios:
                    print(_ratio_line(phase, mode, figure, ratios))
    if args.json:
        args.json.write_text(json.dumps({"a": args.a, "b": args.b, "a_env": args.a_env,
                                         "b_env": args.b_env, "backend": args.backend,
                                         "workers": args.workers, "runs": results}, indent=1))


def _report(results: list[dict[str, Any]], phase: str, n: int,
            runs: dict[str, sb.WrkRun]) -> None:
    a, b = runs["A"], runs["B"]
    results.append({"phase": phase, "mode": a.mode, "round": n,
                    "A": a.to_json(), "B": b.to_json()})
    cpu = b.cpu_ms_per_req / a.cpu_ms_per_req if a.cpu_ms_per_req else float("nan")
    print(f"{phase:>9} {a.mode:>6} round {n + 1}: "
          f"A {a.req_per_s:6.0f} req/s {a.cpu_ms_per_req:6.2f} ms/req p99 {a.p99_ms:6.1f} "
          f"({a.non_2xx + a.socket_errors} errors) | "
          f"B {b.req_per_s:6.0f} req/s {b.cpu_ms_per_req:6.2f} ms/req p99 {b.p99_ms:6.1f} "
          f"({b.non_2xx + b.socket_errors} errors) | B/A cpu {cpu:.3f}", flush=True)


def _remove_worktrees(where: Path) -> None:
    for tree in where.iterdir():
        if (tree / ".git").exists():
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                           check=False, capture_output=True)


if __name__ == "__main__":
    main()
