"""Benchmark what checking the key log adds to the auditor's client (``cadena audit verify``).

Not a test. Builds, in memory, a ledger of ``--entries`` entries, one in
``--key-every`` a key entry (an enrolment), and times, per entry, the
client's chain check (:class:`client.audit.EntryChain`: parse, link, tree,
and the key-log pass) against the key-log pass alone
(:class:`ledger.KeyLogCheck`), best of ``--runs``.

Usage: ``.venv/bin/python bench/audit_keylog.py [--entries 100000] [--key-every 20]``
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from client.audit import EntryChain
from ledger import GENESIS_PREV, EntryDraft, KeyLogCheck, encode_entry, leaf_hash

T0 = datetime(2026, 12, 7, tzinfo=UTC)


def _entries(count: int, key_every: int) -> list[bytes]:
    out, prev = [], GENESIS_PREV
    for i in range(count):
        key = i % key_every == 0
        draft = EntryDraft(time=T0 + timedelta(milliseconds=i), actor=None,
                           action="liaison.enrol" if key else "packet.read",
                           subject={"type": "liaison" if key else "packet", "id": f"x-{i}"},
                           outcome="granted", reason=None, details={"n": i})
        raw = encode_entry(draft, i, prev)
        out.append(raw)
        prev = leaf_hash(raw)
    return out


def _best(runs: int, work: Callable[[], None]) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    """Print the per-entry costs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--key-every", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    entries = _entries(args.entries, args.key_every)

    def chain() -> None:
        c = EntryChain()
        for raw in entries:
            c.add(raw)

    def keys() -> None:
        KeyLogCheck().extend(0, entries)

    whole, alone = _best(args.runs, chain), _best(args.runs, keys)
    n = args.entries
    print(f"entries: {n}, one key entry in {args.key_every}")
    print(f"client chain check per entry (with key log): {whole / n * 1e6:.2f} us")
    print(f"key-log pass alone per entry:                {alone / n * 1e6:.2f} us "
          f"({100 * alone / whole:.1f}% of the chain check)")


if __name__ == "__main__":
    main()
