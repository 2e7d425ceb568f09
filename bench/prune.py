"""Blob pruning benchmark: how fast ``cadena-server blobs prune`` goes, and how long each
batch holds the ledger head lock (every appender, in every process, waits for it).

Not a test. For each backend (SQLite in a temporary directory; PostgreSQL in a
fresh database, dropped afterwards) it migrates an empty database, writes
``--blobs`` orphaned ciphertext files of ``--size`` bytes into a blob store,
ages them past the grace period and prunes them, timing every batch's
transaction (``app.blob_prune.BATCH`` blobs: lock, reference query, renames,
one append of the batch's entries, commit). Prints a table; ``--json PATH``
writes it.

Usage: ``python bench/prune.py [--backends sqlite,postgresql] [--blobs 2048] [--size 4096]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy.orm import Session

from app import blob_prune
from app.blobs import BlobStore
from app.ledger.engine import make_engine
from app.ledger.unit_of_work import make_session_factory
from app.migrate import upgrade_to_head
from bench._server import create_postgres_database, drop_postgres_database


def _orphans(store: BlobStore, count: int, size: int) -> None:
    old = time.time() - 48 * 3600
    for n in range(count):
        data = n.to_bytes(8, "big") + os.urandom(max(0, size - 8))
        path = store.path(hashlib.sha256(data).hexdigest())
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, (old, old))


def run(backend: str, url: str, root: Path, blobs: int, size: int) -> dict[str, Any]:
    """Prune ``blobs`` orphans on ``url``; the figures."""
    upgrade_to_head(url)
    store = BlobStore(root / "blobs")
    _orphans(store, blobs, size)
    engine = make_engine(url)
    batches: list[float] = []
    real = blob_prune._decide

    def timed(session: Session, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return real(session, *args, **kwargs)
        finally:
            session.commit()  # inside the timing: the lock is held until the commit
            batches.append(time.perf_counter() - start)

    blob_prune._decide = timed
    try:
        start = time.perf_counter()
        report = blob_prune.prune(make_session_factory(engine), store, timedelta(hours=24))
        total = time.perf_counter() - start
    finally:
        blob_prune._decide = real
        engine.dispose()
    ordered = sorted(batches)
    return {"backend": backend, "blobs": blobs, "pruned": len(report.pruned),
            "seconds": round(total, 3), "blobs_per_s": round(len(report.pruned) / total),
            "batch": blob_prune.BATCH, "batches": len(batches),
            "lock_ms_p50": round(ordered[len(ordered) // 2] * 1e3, 1),
            "lock_ms_max": round(ordered[-1] * 1e3, 1)}


def main() -> None:
    """Run each backend and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--blobs", type=int, default=2048)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--postgres-url", default=os.environ.get(
        "CADENA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    for backend in args.backends.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            if backend == "sqlite":
                rows.append(run(backend, f"sqlite:///{root / 'cadena.db'}", root, args.blobs,
                                args.size))
                continue
            url = create_postgres_database(args.postgres_url, "cadena_prune")
            try:
                rows.append(run(backend, url, root, args.blobs, args.size))
            finally:
                drop_postgres_database(args.postgres_url, url)
    print(f"{'backend':>10} {'blobs':>7} {'pruned':>7} {'seconds':>8} {'blobs/s':>8} "
          f"{'batch':>6} {'lock p50 ms':>12} {'lock max ms':>12}")
    for r in rows:
        print(f"{r['backend']:>10} {r['blobs']:>7} {r['pruned']:>7} {r['seconds']:>8} "
              f"{r['blobs_per_s']:>8} {r['batch']:>6} {r['lock_ms_p50']:>12} "
              f"{r['lock_ms_max']:>12}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
