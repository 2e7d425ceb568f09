"""The verification part of ``bench/ledger.py``: full verification in a fresh interpreter.

Each measurement runs ``ledger.verify.verifier.verify_ledger`` over the SQLite file in
a new process (so no page of the benchmark's own ledger is warm in it) and
measures, in that process, the raw hashlib rate for the same number of leaf
and interior-node hashes: the ratio of the two is the figure the target is
set on. Sequentially (``workers=1``) and in parallel (``workers`` forked
worker processes, each with its own read-only connection).

Memory: the parent's peak RSS (``VmHWM``), and each worker's peak RSS and
private memory (``Private_*`` of ``smaps_rollup``) when its reader closes.
Forked workers share the parent's pages until they write to them and RSS
counts shared pages in each process, so the sum of peaks overstates the
memory used; the sum of the parent's peak and the workers' private memory
is closer to it. Both are reported.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from nacl.signing import SigningKey
from sqlalchemy.pool import NullPool

from app.ledger.engine import make_engine
from app.ledger.reader import LedgerReaderOpener
from app.ledger.unit_of_work import make_session_factory
from app.models.ledger import LEDGER_TABLES
from ledger import LedgerReader, NoteSigner, NoteVerifier
from ledger.sql import SqlStorage


def _status_mb(field: str) -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    """Peak RSS of this address space, in MB."""
    # VmHWM: ru_maxrss would carry over the high-water mark of the (large)
    # benchmark process this verifier was spawned from.
    return _status_mb("VmHWM")


def private_mb() -> float:
    """Memory this process does not share (private clean + dirty pages), in MB."""
    total = 0
    try:
        with open("/proc/self/smaps_rollup", encoding="ascii") as rollup:
            for line in rollup:
                if line.startswith(("Private_Clean:", "Private_Dirty:")):
                    total += int(line.split()[1])
    except OSError:
        return 0.0
    return total / 1024


@dataclass(frozen=True)
class MeasuredOpener:
    """A worker's reader, as in production, that leaves its memory figures in ``directory``."""

    url: str
    directory: str

    @contextmanager
    def __call__(self) -> Iterator[LedgerReader]:
        """The reader; on close, this worker's peak RSS and private memory."""
        with LedgerReaderOpener(self.url)() as reader:
            yield reader
        figures = {"peak_rss_mb": rss_mb(), "private_mb": private_mb()}
        Path(self.directory, f"{os.getpid()}.json").write_text(json.dumps(figures))


def raw_hash_seconds(samples: Sequence[bytes], leaves: int) -> float:
    """Seconds hashlib needs for ``leaves`` leaf hashes and the tree's interior nodes."""
    sha256 = hashlib.sha256
    interior = leaves - bin(leaves).count("1")
    node = bytes(64)
    start = time.perf_counter()
    for k in range(leaves):
        sha256(b"\x00" + samples[k % len(samples)]).digest()
    for _ in range(interior):
        sha256(b"\x01" + node).digest()
    return time.perf_counter() - start


def verify_in_this_process(db_path: Path, origin: str, seed: bytes,
                           workers: int = 1) -> dict[str, float]:
    """Verify the ledger at ``db_path``: rate, peak RSS, and the raw hashlib rate beside it."""
    from ledger import verify_ledger

    verifier = NoteVerifier.from_string(NoteSigner(origin, SigningKey(seed)).verifier_key())
    url = f"sqlite:///{db_path}"
    engine = make_engine(url, poolclass=NullPool)
    with tempfile.TemporaryDirectory(prefix="cadena-verify-") as figures, \
            make_session_factory(engine)() as session:
        storage = SqlStorage(session, LEDGER_TABLES)
        samples = list(storage.entries(0, 1_000))
        baseline = rss_mb()
        start = time.perf_counter()
        report = verify_ledger(storage, verifier, opener=MeasuredOpener(url, figures),
                               workers=workers)
        elapsed = time.perf_counter() - start
        found = [json.loads(p.read_text()) for p in Path(figures).glob("*.json")]
    engine.dispose()
    if not report.ok:
        raise SystemExit(f"benchmark ledger does not verify: {report}")
    hashed = raw_hash_seconds(samples, report.size)
    parent = rss_mb()
    return {
        "entries": report.size,
        "checkpoints": report.checkpoints,
        "workers": len(found),
        "verify_eps": report.size / elapsed,
        "hashlib_eps": report.size / hashed,
        "ratio": hashed / elapsed,
        "baseline_rss_mb": baseline,
        "peak_rss_mb": parent,
        "worker_peak_rss_mb": max((f["peak_rss_mb"] for f in found), default=0.0),
        "sum_peak_rss_mb": parent + sum(f["peak_rss_mb"] for f in found),
        "sum_private_rss_mb": parent + sum(f["private_mb"] for f in found),
        "load_average": os.getloadavg()[0],
    }


def run_verify_subprocess(script: str, db_path: Path, workers: int) -> dict[str, float]:
    """Run :func:`verify_in_this_process` in a fresh interpreter; its JSON result."""
    out = subprocess.run(
        [sys.executable, script, "--verify-db", str(db_path), "--verify-workers", str(workers)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def cpu_count() -> int:
    """The CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
