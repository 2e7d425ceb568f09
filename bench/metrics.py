"""What the metrics middleware adds to one request: ``app.metrics.RequestMetrics`` in a loop.

Not a test. Calls a do-nothing ASGI app that answers 200 on a matched route,
bare and wrapped in the middleware, in alternating rounds, and prints the
median cost per call of each and the difference. ``--multiprocess`` measures
prometheus-client's multiprocess mode (counters in memory-mapped files, as
under ``serve --workers N``) in a temporary directory.

Usage: ``python bench/metrics.py [--calls 100000] [--rounds 5] [--multiprocess]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


class _Route:
    path = "/v1/states"
    name = "state.list"


async def _app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
    scope["route"] = _Route  # as the router sets it
    await send({"type": "http.response.start", "status": 200})


async def _send(message: dict[str, Any]) -> None:
    return None


async def _receive() -> dict[str, Any]:
    return {}


async def _per_call(app: Any, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        await app({"type": "http", "method": "GET"}, _receive, _send)
    return (time.perf_counter() - start) / calls


async def _measure(calls: int, rounds: int) -> tuple[float, float]:
    from app.metrics import RequestMetrics

    wrapped = RequestMetrics(_app)
    bare: list[float] = []
    metered: list[float] = []
    for _ in range(rounds):
        bare.append(await _per_call(_app, calls))
        metered.append(await _per_call(wrapped, calls))
    return statistics.median(bare), statistics.median(metered)


def main() -> None:
    """Print the median cost per call, bare and with the middleware, in microseconds."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--multiprocess", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        if args.multiprocess:  # before prometheus_client is imported
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        bare, metered = asyncio.run(_measure(args.calls, args.rounds))
    mode = "multiprocess" if args.multiprocess else "one process"
    print(f"metrics middleware ({mode}), median of {args.rounds} rounds of {args.calls} calls")
    print(f"  bare app:        {bare * 1e6:7.2f} us/call")
    print(f"  with middleware: {metered * 1e6:7.2f} us/call")
    print(f"  added:           {(metered - bare) * 1e6:7.2f} us/request")


if __name__ == "__main__":
    main()
