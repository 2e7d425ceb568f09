"""Old against new: the benchmarks run on two revisions in alternating rounds.

A refactoring must not cost speed (issue 19). On a shared, noisy machine one
run of each is not a comparison, so this runs every chosen benchmark on the
old and the new revision in turn (old, new, old, new, ...), each from its own
git worktree with ``PYTHONPATH`` set to it, reads the JSON each one writes,
and prints, for every figure, the median of each side and new / old.

    python bench/compare.py --old 50130b9 --new HEAD --rounds 3

The short settings below keep one round to a few minutes; the full benchmarks
take their defaults when run directly. Figures are whatever the benchmarks
print: a throughput ratio above 1 and a time ratio below 1 favour the new
revision.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

SHORT = {  # benchmark: its options for one short round
    "ledger": ["--sizes", "10000,50000", "--pymerkle-max", "0"],
    "api": ["--backends", "sqlite", "--duration", "6"],
    "crypto": ["--sizes", "64"],
    "transfer": ["--size-mib", "128"],
}


# bench/api.py before the fix of 2026-12-06 let admission's per-liaison bounds
# (16 requests, 4 uploads in flight) refuse its own load: an older revision gets
# the same lifted bounds as the newer one, so both measure the same thing.
_OLD_UNLIMITED = 'UNLIMITED = {"CADENA_RATE_SUBMIT_PER_MINUTE": "1000000"}'
_UNLIMITED = ('UNLIMITED = {"CADENA_RATE_SUBMIT_PER_MINUTE": "1000000", '
              '"CADENA_MAX_REQUESTS_PER_LIAISON": "1000", '
              '"CADENA_MAX_UPLOADS_PER_LIAISON": "1000"}')


def _worktree(rev: str, where: Path) -> Path:
    path = where / rev.replace("/", "_")
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), rev],
                   check=True, capture_output=True)
    api = path / "bench" / "api.py"
    api.write_text(api.read_text().replace(_OLD_UNLIMITED, _UNLIMITED))
    return path


def _run(tree: Path, bench: str, out: Path, extra: list[str]) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, str(tree / "bench" / f"{bench}.py"), *SHORT[bench], *extra,
           "--json", str(out)]
    done = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{bench} on {tree.name} failed:\n{done.stderr[-3000:]}")
    loaded: dict[str, Any] = json.loads(out.read_text())
    return loaded


def _figures(data: Any, prefix: str = "") -> Iterator[tuple[str, float]]:
    """Every number in a benchmark's JSON, named by its path."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _figures(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            name = value.get("name") or value.get("phase") if isinstance(value, dict) else None
            yield from _figures(value, f"{prefix}[{name or i}]")
    elif isinstance(data, int | float) and not isinstance(data, bool):
        yield prefix, float(data)


def main() -> None:
    """Run the rounds and print the medians side by side."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", required=True, help="the revision before the change")
    parser.add_argument("--new", default="HEAD", help="the revision after it")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--benches", default=",".join(SHORT))
    parser.add_argument("--postgres-url", help="passed to bench/api.py (adds PostgreSQL)")
    parser.add_argument("--json", type=Path, help="write every run's figures here")
    args = parser.parse_args()
    benches = [b for b in args.benches.split(",") if b]
    runs: dict[str, dict[str, list[dict[str, float]]]] = {
        b: {"old": [], "new": []} for b in benches}
    with tempfile.TemporaryDirectory(prefix="cadena-compare-") as tmp:
        where = Path(tmp)
        trees = {"old": _worktree(args.old, where), "new": _worktree(args.new, where)}
        try:
            for n in range(args.rounds):
                for side in ("old", "new"):
                    for bench in benches:
                        extra = []
                        if bench == "api" and args.postgres_url:
                            extra = ["--backends", "sqlite,postgresql",
                                     "--postgres-url", args.postgres_url]
                        out = where / f"{bench}-{side}-{n}.json"
                        figures = dict(_figures(_run(trees[side], bench, out, extra)))
                        runs[bench][side].append(figures)
                        print(f"round {n + 1} {side:3} {bench}: {len(figures)} figures",
                              file=sys.stderr, flush=True)
        finally:
            for tree in trees.values():
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                                str(tree)], check=False, capture_output=True)
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1), encoding="utf-8")
    print(f"old {args.old}, new {args.new}, {args.rounds} alternating rounds; medians")
    print(f"{'figure':70} {'old':>12} {'new':>12} {'new/old':>8}")
    for bench in benches:
        names = sorted(set.intersection(*(set(r) for r in runs[bench]["old"] + runs[bench]["new"])))
        for name in names:
            old = statistics.median(r[name] for r in runs[bench]["old"])
            new = statistics.median(r[name] for r in runs[bench]["new"])
            ratio = f"{new / old:8.3f}" if old else "       -"
            print(f"{bench + ':' + name:70.70} {old:12.4g} {new:12.4g} {ratio}")


if __name__ == "__main__":
    main()
