"""One liaison's burst against another's requests: how long the other waits (ADR 0038).

Not a test. Two servers, A and B (git revisions or this tree, as in
``bench/sidebyside.py``), are started; then, in alternating rounds, one at a
time: a *hog* (one liaison, wrk with ``--concurrency`` connections, its inbox
listed again and again: as many requests in flight as its per-liaison bound
lets it) and, from the second second to the second-to-last, a *victim*
(another liaison, one request at a time, a retrieve every ``--every`` ms from
this process). Printed per round and side: the victim's latency p50 / p99 /
max, and the hog's req/s; then the victim alone (no hog) for reference.

    python bench/fairness.py --a 649b458 --rounds 3          # before / after the fair share

The victim's client is Python (httpx), which is fine for its low rate: what
it measures is the server's queue, milliseconds to tens of milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _serverbound as sb
from bench.sidebyside import Side, _remove_worktrees, _side, add_side_arguments


def _hog_lines(side: Side) -> Path:
    hog = side.config.exchange.recipients[0]
    path = side.config.tmp / "hog.tsv"
    path.write_text(sb._line("GET", "/v1/packets?limit=50", hog.token))  # noqa: SLF001
    return path


def _victim(side: Side, seconds: float, every_ms: float, into: list[float]) -> None:
    victim = side.config.exchange.recipients[1]
    packets = side.config.exchange.submitted
    with httpx.Client(base_url=side.config.server.url, timeout=30.0,
                      headers=victim.auth) as http:
        http.get(f"/v1/packets/{packets[0]}")  # its token known to the admission step
        end = time.monotonic() + seconds
        n = 0
        while time.monotonic() < end:
            started = time.perf_counter()
            answer = http.get(f"/v1/packets/{packets[n % len(packets)]}")
            into.append((time.perf_counter() - started) * 1e3)
            if answer.status_code != 200:
                raise RuntimeError(f"victim: {answer.status_code} {answer.text}")
            n += 1
            time.sleep(max(0.0, every_ms / 1e3 - (time.perf_counter() - started)))


def _figures(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return (f"victim n={len(ordered):4d} p50 {statistics.median(ordered):6.1f} "
            f"p99 {p99:6.1f} max {ordered[-1]:6.1f} ms")


def one_round(side: Side, seconds: float, every_ms: float, *, hog: bool) -> str:
    """The victim for ``seconds - 2`` s, under the hog's wrk or alone."""
    sb.settle(side.pids)
    latencies: list[float] = []
    def later() -> None:
        time.sleep(1.0)
        _victim(side, seconds - 2.0, every_ms, latencies)

    victim = threading.Thread(target=later)
    victim.start()
    if hog:
        out = sb.wrk(side.config.server.url, _hog_lines(side),
                     connections=side.config.args.concurrency, seconds=seconds)
        run = sb.parse_wrk(out, sb.WrkRun(side.name, "hog", "closed"))
        hogged = f"hog {run.req_per_s:5.0f} req/s ({run.non_2xx + run.socket_errors} non-2xx)"
    else:
        hogged = "no hog"
    victim.join()
    return f"{_figures(latencies)} | {hogged}"


def main() -> None:
    """Start both sides, then the alternating rounds; print each."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_side_arguments(parser)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per round")
    parser.add_argument("--every", type=float, default=50.0, help="victim's period, ms")
    parser.add_argument("--concurrency", type=int, default=16, help="the hog's connections")
    parser.add_argument("--message-bytes", type=int, default=4096)
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cadena-fair-") as tmp, ExitStack() as stack:
        where = Path(tmp)
        stack.callback(_remove_worktrees, where)
        sides = [stack.enter_context(_side(args, "A", args.a, args.a_env, where)),
                 stack.enter_context(_side(args, "B", args.b, args.b_env, where))]
        print(f"A = {args.a or 'this tree'} {' '.join(args.a_env)}; "
              f"B = {args.b or 'this tree'} {' '.join(args.b_env)}; {args.backend}, "
              f"{args.workers} worker(s); hog: {args.concurrency} connections, one liaison; "
              f"victim: one retrieve every {args.every:.0f} ms", flush=True)
        for side in sides:
            print(f"{side.name} alone   : {one_round(side, args.duration, args.every, hog=False)}",
                  flush=True)
        for n in range(args.rounds):
            for side in sides:
                print(f"{side.name} round {n + 1}: "
                      f"{one_round(side, args.duration, args.every, hog=True)}", flush=True)


if __name__ == "__main__":
    main()
