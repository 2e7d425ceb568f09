"""Benchmark the database blob store alone: one blob written and read in-process.

Not a test. Makes a PostgreSQL database, migrates it, streams one blob of
``--size-mib`` through ``receive_blob`` into :class:`app.blob_db.DatabaseBlobStore`
(64 KiB pieces, as a request body arrives) and reads it back with ``stream``
(as a download is served), then drops the database. No HTTP, no client
sealing: the figures are the store's and PostgreSQL's own, beside
``bench/transfer.py --blob-store database`` (end to end, which shares the
cores with the client's sealing and the server's HTTP).

Usage: ``.venv/bin/python bench/blob_store.py --postgres-url postgresql://postgres@127.0.0.1/postgres
[--size-mib 1024]``
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.blob_db import DatabaseBlobStore  # noqa: E402
from app.blobs import receive_blob  # noqa: E402
from app.ledger import make_engine  # noqa: E402
from app.migrate import upgrade_to_head  # noqa: E402
from bench._server import create_postgres_database, drop_postgres_database  # noqa: E402

PIECE = 1 << 16
MIB = 1 << 20


def _peak_rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    return kib / 1024


def measure(database_url: str, size: int) -> dict[str, float]:
    """Write and read one blob of ``size`` bytes; MiB/s each way and the peak RSS."""
    upgrade_to_head(database_url)
    engine = make_engine(database_url)
    store = DatabaseBlobStore(engine)
    block = os.urandom(PIECE)
    digest = hashlib.sha256()
    for _ in range(size // PIECE):
        digest.update(block)

    async def body() -> AsyncIterator[bytes]:
        for _ in range(size // PIECE):
            yield block

    async def read() -> int:
        return sum([len(chunk) async for chunk in store.stream(digest.hexdigest())])

    try:
        start = time.perf_counter()
        asyncio.run(receive_blob(body(), store.writer(digest.hexdigest(), size)))
        wrote = time.perf_counter() - start
        start = time.perf_counter()
        if asyncio.run(read()) != size:
            raise SystemExit("the blob read back has another size")
        read_s = time.perf_counter() - start
    finally:
        store.close()
    return {"write_mib_s": size / MIB / wrote, "read_mib_s": size / MIB / read_s,
            "peak_rss_mib": _peak_rss_mib()}


def main() -> None:
    """Parse arguments, run once, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres-url", required=True, help="PostgreSQL admin URL")
    parser.add_argument("--size-mib", type=int, default=1024)
    args = parser.parse_args()
    url = create_postgres_database(args.postgres_url, "cadena_bench_blobs")
    try:
        figures = measure(url, args.size_mib * MIB)
    finally:
        drop_postgres_database(args.postgres_url, url)
    print(f"blob of {args.size_mib} MiB in PostgreSQL rows: write {figures['write_mib_s']:.0f} "
          f"MiB/s, read {figures['read_mib_s']:.0f} MiB/s, peak RSS "
          f"{figures['peak_rss_mib']:.0f} MiB")


if __name__ == "__main__":
    main()
