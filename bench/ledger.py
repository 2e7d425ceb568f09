"""Ledger benchmark: append throughput, proof latency, full verification, vs pymerkle 7.

Not a test. Builds one SQLite ledger (a file in a temporary directory, with
the production settings of ``app/ledger/engine.py``: WAL, ``synchronous=FULL``, and the
engine's default connection pool, as ``app/main.py`` uses it) and grows it
through each size in ``--sizes``, appending committed batches of 1,000
realistic entries (~400 bytes, built by ``ledger.format.entry``) and signing a
checkpoint after every batch. At each size it measures:

- append throughput (entries/s, committed; checkpoint signing timed apart),
  and where a batch's time goes: Python (encoding, hashing, tree), the
  storage's inserts, and the commit (the WAL fsync, plus SQLite's periodic
  WAL checkpoint);
- inclusion and consistency proof latency, p50/p99, at random indices, for
  tree sizes that have a signed checkpoint: through ``Ledger`` with the
  server's committed-tree cache (``ledger.store.treecache``, default budget; the
  API path, which also checks the trust rule), and through ``ledger.format.merkle``
  alone, reading the nodes from SQLite (the ``(merkle only)`` columns: the
  path when the cache is off or does not yet hold the size);
- the same for pymerkle 7's ``SqliteTree`` grown alongside (bulk
  ``append_entries`` in chunks of 1,000; proof samples capped by a time budget),
  with its default settings. ``incl x`` and ``cons x`` are pymerkle's p50
  divided by ours through ``Ledger`` (the API path, trust-rule lookup
  included), both measured in this process at the same size on random
  indices: p50 against p50, so pymerkle's long tail (p99) does not flatter us;
- full verification (``ledger.verify.verifier.verify_ledger``) in a fresh subprocess:
  entries/s, peak RSS, and the raw hashlib rate for the same number of leaf and
  node hashes in that process; sequentially, then with one worker process per
  CPU (``bench/_verify.py``: the parent's and the workers' memory).

The machine's load average is printed with every row: these are wall-clock
rates, and on a shared machine they move with it.

Usage: ``python bench/ledger.py [--sizes 10000,100000,1000000] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import base64
import gc
import hashlib
import json
import os
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pymerkle
from nacl.signing import SigningKey
from sqlalchemy.orm import sessionmaker

from app.ledger.engine import make_engine
from app.ledger.unit_of_work import UnitOfWork, make_session_factory, transaction, tree_cache_of
from app.migrate import upgrade_to_head
from app.models.ledger import LEDGER_TABLES
from bench._verify import cpu_count, run_verify_subprocess, verify_in_this_process
from ledger import (
    Actor,
    EntryDraft,
    Ledger,
    NoteSigner,
    TreeCache,
    merkle,
    verify_consistency,
    verify_inclusion,
)
from ledger.sql import SqlStorage

BATCH = 1_000
ORIGIN = "bench.cadena.example/ledger"
SEED = bytes([1]) * 32  # see the report: NoteVerifier.from_string and "+" in keys
PROOF_SAMPLES = 2_000
PYMERKLE_BUDGET_S = 20.0


@dataclass
class Latency:
    """Latency percentiles of one operation, in milliseconds."""

    p50_ms: float
    p99_ms: float
    samples: int


@dataclass
class SizeResult:
    """Everything measured at one ledger size."""

    size: int
    append_eps: float
    checkpoint_ms: float
    inclusion: Latency
    consistency: Latency
    inclusion_merkle: Latency
    consistency_merkle: Latency
    pymerkle_append_eps: float | None = None
    pymerkle_inclusion: Latency | None = None
    pymerkle_consistency: Latency | None = None
    verify: dict[str, float] = field(default_factory=dict)
    verify_parallel: dict[str, float] = field(default_factory=dict)
    batch_ms: dict[str, float] = field(default_factory=dict)
    load_average: float = 0.0


def _client_signature(n: int) -> str:
    return base64.b64encode(hashlib.sha512(n.to_bytes(8, "big")).digest()).decode()


def make_drafts(start: int, count: int) -> list[EntryDraft]:
    """``count`` realistic drafts: a retrieval by a liaison, some with a client signature."""
    base = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    drafts = []
    for n in range(start, start + count):
        signed = n % 4 == 0
        drafts.append(
            EntryDraft(
                time=base + timedelta(microseconds=37 * n),
                actor=Actor(liaison=f"mx-liaison-{n % 97:04d}", key=f"k{n % 89:015x}"),
                action="packet.receipt" if signed else "packet.retrieve",
                subject={"id": f"0193a1f2-7c4e-7b3a-9d{n:010x}", "type": "packet"},
                outcome="granted",
                details={"bytes": 1_048_576 + n, "channel": "ch-trafficking-7", "level": "secret"},
                signature=_client_signature(n) if signed else None,
            )
        )
    return drafts


def percentiles(samples_ns: Sequence[int]) -> Latency:
    """p50 and p99 of nanosecond samples, in milliseconds."""
    ordered = sorted(samples_ns)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6

    return Latency(p50_ms=pick(0.50), p99_ms=pick(0.99), samples=len(ordered))


def time_calls(calls: Sequence[Callable[[], object]], budget_s: float = 1e9) -> Latency:
    """Time each call (at least 5, stopping once ``budget_s`` is spent)."""
    samples: list[int] = []
    deadline = time.perf_counter() + budget_s
    for call in calls:
        start = time.perf_counter_ns()
        call()
        samples.append(time.perf_counter_ns() - start)
        if len(samples) >= 5 and time.perf_counter() > deadline:
            break
    return percentiles(samples)


class TimedStorage(SqlStorage):
    """``SqlStorage`` that adds up the time its ``append`` (the inserts) takes."""

    insert_s = 0.0

    def append(
        self, first_index: int, entries: Sequence[bytes], nodes: Sequence[tuple[merkle.Node, bytes]]
    ) -> None:
        """Time the storage's part of an append."""
        start = time.perf_counter()
        super().append(first_index, entries, nodes)
        self.insert_s += time.perf_counter() - start


class OurLedger:
    """The Cadena ledger on a SQLite file, grown batch by batch."""

    def __init__(self, path: Path) -> None:
        """Create and migrate the database at ``path``."""
        self.url = f"sqlite:///{path}"
        upgrade_to_head(self.url)
        # Pooled like the server: with NullPool every batch would also pay for
        # opening the file and for the full WAL checkpoint SQLite runs when the
        # last connection closes, which no server does per request.
        self.engine = make_engine(self.url)
        # With the server's committed-tree cache (app/main.py), default budget.
        self.factory: sessionmaker[UnitOfWork] = make_session_factory(self.engine, TreeCache())
        self.signer = NoteSigner(ORIGIN, SigningKey(SEED))
        self.size = 0
        self.append_s = 0.0
        self.insert_s = 0.0
        self.commit_s = 0.0
        self.appended = 0
        self.checkpoint_ns: list[int] = []
        # As the server does once it has started (app/main.py): the objects of
        # start-up, frozen out of the collector. Otherwise every full
        # collection walks ~95,000 of them (25-50 ms), and the drafts each
        # batch keeps alive set one off every ~14 batches: 18% of the time.
        gc.collect()
        gc.freeze()

    def grow_to(self, target: int) -> None:
        """Append committed batches of ``BATCH`` entries, a checkpoint after each."""
        while self.size < target:
            drafts = make_drafts(self.size, min(BATCH, target - self.size))
            start = time.perf_counter()
            session = self.factory()
            try:
                storage = TimedStorage(session, LEDGER_TABLES, tree_cache_of(session))
                Ledger(storage).append_many(drafts)
                committing = time.perf_counter()
                session.commit()
                self.commit_s += time.perf_counter() - committing
            finally:
                session.close()
            self.append_s += time.perf_counter() - start
            self.insert_s += storage.insert_s
            self.appended += len(drafts)
            self.size += len(drafts)
            start_ns = time.perf_counter_ns()
            with transaction(self.factory) as session:
                Ledger(SqlStorage(session, LEDGER_TABLES, tree_cache_of(session))).checkpoint(
                    self.signer, ORIGIN)
            self.checkpoint_ns.append(time.perf_counter_ns() - start_ns)

    def take_append_rate(self) -> tuple[float, float, dict[str, float]]:
        """Entries/s since the last call, p50 checkpoint ms, and ms per batch by stage."""
        rate = self.appended / self.append_s if self.append_s else 0.0
        checkpoint = percentiles(self.checkpoint_ns).p50_ms
        batches = max(self.appended / BATCH, 1e-9)
        insert, commit = self.insert_s / batches * 1e3, self.commit_s / batches * 1e3
        stages = {
            "total": self.append_s / batches * 1e3,
            "python": self.append_s / batches * 1e3 - insert - commit,
            "insert": insert,
            "commit": commit,
        }
        self.append_s = self.insert_s = self.commit_s = 0.0
        self.appended, self.checkpoint_ns = 0, []
        return rate, checkpoint, stages

    def measure_proofs(self, rng: random.Random) -> dict[str, Latency]:
        """Proof latencies at the current size (which has a checkpoint)."""
        n = self.size
        indices = [rng.randrange(n) for _ in range(PROOF_SAMPLES)]
        olds = [rng.randrange(1, n // BATCH + 1) * BATCH for _ in range(PROOF_SAMPLES)]
        olds = [m if m < n else max(BATCH, n - BATCH) for m in olds]
        with self.factory() as session:
            storage = SqlStorage(session, LEDGER_TABLES, tree_cache_of(session))
            ledger = Ledger(storage)
            _check_proofs(ledger, storage, indices[:20], olds[:20], n)
            return {
                "inclusion": time_calls([partial(ledger.inclusion_proof, i, n) for i in indices]),
                "consistency": time_calls([partial(ledger.consistency_proof, m, n) for m in olds]),
                "inclusion_merkle": time_calls(
                    [partial(merkle.inclusion_proof, storage, i, n) for i in indices]
                ),
                "consistency_merkle": time_calls(
                    [partial(merkle.consistency_proof, storage, m, n) for m in olds]
                ),
            }


def _check_proofs(
    ledger: Ledger, storage: SqlStorage, indices: list[int], olds: list[int], n: int
) -> None:
    """A benchmark of wrong proofs is worthless: verify a few first."""
    root = ledger.root(n)
    for index in indices:
        leaf = merkle.leaf_hash(next(storage.entries(index, index + 1)))
        verify_inclusion(leaf, index, n, ledger.inclusion_proof(index, n), root=root)
    for m in olds:
        verify_consistency(m, n, ledger.root(m), root, proof=ledger.consistency_proof(m, n))


class PymerkleLedger:
    """pymerkle 7's SqliteTree with the same entries, for comparison."""

    def __init__(self, path: Path) -> None:
        """Create the tree database at ``path``."""
        self.tree = pymerkle.SqliteTree(str(path))
        self.size = 0

    def grow_to(self, target: int) -> float:
        """Append up to ``target`` in committed chunks of ``BATCH``; entries/s."""
        elapsed, count = 0.0, 0
        while self.size < target:
            drafts = make_drafts(self.size, min(BATCH, target - self.size))
            raws = [_encode_like_ours(d, self.size + k) for k, d in enumerate(drafts)]
            start = time.perf_counter()
            self.tree.append_entries(raws, chunksize=BATCH)
            elapsed += time.perf_counter() - start
            count += len(raws)
            self.size += len(raws)
        return count / elapsed if elapsed else 0.0

    def measure_proofs(self, rng: random.Random) -> dict[str, Latency]:
        """Proof latencies at the current size, capped by a time budget."""
        n = self.size
        indices = [rng.randrange(n) + 1 for _ in range(PROOF_SAMPLES)]  # pymerkle counts from 1
        olds = [rng.randrange(1, n) for _ in range(PROOF_SAMPLES)]
        tree = self.tree
        return {
            "inclusion": time_calls(
                [partial(tree.prove_inclusion, i, n) for i in indices], PYMERKLE_BUDGET_S
            ),
            "consistency": time_calls(
                [partial(tree.prove_consistency, m, n) for m in olds], PYMERKLE_BUDGET_S
            ),
        }


def _encode_like_ours(draft: EntryDraft, index: int) -> bytes:
    """Entry bytes of the same size and shape as ours (pymerkle stores opaque bytes)."""
    from ledger import encode_entry

    prev = bytes(32) if index == 0 else hashlib.sha256(index.to_bytes(8, "big")).digest()
    return encode_entry(draft, index, prev)


def measure(sizes: Sequence[int], pymerkle_max: int, workdir: Path) -> list[SizeResult]:
    """Grow both ledgers through ``sizes`` and measure everything at each."""
    rng = random.Random(20261122)
    ours = OurLedger(workdir / "cadena.db")
    theirs = PymerkleLedger(workdir / "pymerkle.db")
    results = []
    for size in sizes:
        ours.grow_to(size)
        append_eps, checkpoint_ms, stages = ours.take_append_rate()
        proofs = ours.measure_proofs(rng)
        result = SizeResult(
            size,
            append_eps,
            checkpoint_ms,
            inclusion=proofs["inclusion"],
            consistency=proofs["consistency"],
            inclusion_merkle=proofs["inclusion_merkle"],
            consistency_merkle=proofs["consistency_merkle"],
            batch_ms=stages,
        )
        if size <= pymerkle_max:
            result.pymerkle_append_eps = theirs.grow_to(size)
            their_proofs = theirs.measure_proofs(rng)
            result.pymerkle_inclusion = their_proofs["inclusion"]
            result.pymerkle_consistency = their_proofs["consistency"]
        result.verify = run_verify_subprocess(__file__, workdir / "cadena.db", 1)
        result.verify_parallel = run_verify_subprocess(__file__, workdir / "cadena.db",
                                                       cpu_count())
        result.load_average = os.getloadavg()[0]
        results.append(result)
        print_table([result], header=len(results) == 1)
    ours.engine.dispose()
    theirs.tree.close()
    return results


def _lat(latency: Latency | None) -> str:
    return "-" if latency is None else f"{latency.p50_ms:.3f}/{latency.p99_ms:.3f}"


COLUMNS = (
    ("size", 9),
    ("append e/s", 11),
    ("pymerkle e/s", 12),
    ("incl p50/p99 ms", 16),
    ("(merkle only)", 14),
    ("pymerkle incl", 16),
    ("cons p50/p99 ms", 16),
    ("(merkle only)", 14),
    ("pymerkle cons", 16),
    ("incl x", 7),
    ("cons x", 7),
    ("verify e/s", 10),
    ("hashlib e/s", 11),
    ("ratio", 6),
    ("peak RSS MB", 11),
    ("par verify e/s", 14),
    ("par ratio", 9),
    ("par RSS MB parent/worker/sum", 28),
    ("batch ms py/ins/commit", 22),
    ("load", 5),
)


def _row(r: SizeResult) -> list[str]:
    speedup = consistency_speedup = "-"
    if r.pymerkle_inclusion is not None:
        speedup = f"{r.pymerkle_inclusion.p50_ms / r.inclusion.p50_ms:.0f}"
    if r.pymerkle_consistency is not None:
        consistency_speedup = f"{r.pymerkle_consistency.p50_ms / r.consistency.p50_ms:.0f}"
    pm_eps = "-" if r.pymerkle_append_eps is None else f"{r.pymerkle_append_eps:,.0f}"
    v, p = r.verify, r.verify_parallel
    return [
        f"{r.size:,}",
        f"{r.append_eps:,.0f}",
        pm_eps,
        _lat(r.inclusion),
        _lat(r.inclusion_merkle),
        _lat(r.pymerkle_inclusion),
        _lat(r.consistency),
        _lat(r.consistency_merkle),
        _lat(r.pymerkle_consistency),
        speedup,
        consistency_speedup,
        f"{v['verify_eps']:,.0f}",
        f"{v['hashlib_eps']:,.0f}",
        f"{v['ratio']:.0%}",
        f"{v['peak_rss_mb']:.0f}",
        f"{p.get('verify_eps', 0):,.0f} ({p.get('workers', 0):.0f})",
        f"{p.get('ratio', 0):.0%}",
        f"{p.get('peak_rss_mb', 0):.0f}/{p.get('worker_peak_rss_mb', 0):.0f}/"
        f"{p.get('sum_peak_rss_mb', 0):.0f} (priv {p.get('sum_private_rss_mb', 0):.0f})",
        "/".join(f"{r.batch_ms.get(k, 0):.1f}" for k in ("python", "insert", "commit")),
        f"{r.load_average:.1f}",
    ]


def print_table(results: Sequence[SizeResult], header: bool = True) -> None:
    """Print one row per size (the header first if asked)."""
    if header:
        print(" | ".join(name.rjust(width) for name, width in COLUMNS))
    for r in results:
        cells = _row(r)
        print(" | ".join(c.rjust(w) for c, (_, w) in zip(cells, COLUMNS, strict=True)), flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments and run the benchmark (or the verification subprocess)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--pymerkle-max", type=int, default=1_000_000)
    parser.add_argument("--verify-db", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--verify-workers", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.verify_db is not None:
        print(json.dumps(verify_in_this_process(args.verify_db, ORIGIN, SEED,
                                                args.verify_workers)))
        return
    sizes = sorted(int(s) for s in args.sizes.split(","))
    with tempfile.TemporaryDirectory(prefix="cadena-bench-") as tmp:
        started = time.perf_counter()
        results = measure(sizes, args.pymerkle_max, Path(tmp))
        print(f"total {time.perf_counter() - started:.0f} s; Python {sys.version.split()[0]}, "
              f"SQLite {sqlite3.sqlite_version}; load average {os.getloadavg()[0]:.1f}")
    if args.json is not None:
        payload: dict[str, Any] = {"results": [asdict(r) for r in results], "batch": BATCH}
        args.json.write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
