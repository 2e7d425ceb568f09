"""The ledger head under contention on PostgreSQL, without HTTP (issue 21, ADR 0028).

Not a test. ``--processes`` processes of ``--threads`` threads each append
one entry per transaction through the service's unit of work (``record``
plus one row queued for the commit, as a retrieve does) for ``--seconds``,
on a fresh database, and report appends per second, the mean time from
asking for the lock to the end of COMMIT, and ``lock wait``: the mean
number of backends waiting for a heavyweight lock (the head row) over the
threads, sampled every 5 ms (``bench/_serverbound.py``), i.e. the share of
a transaction's time spent waiting for the head. With less CPU per
transaction than a request, the head is more of the limit here than behind
HTTP. Run it with another tree on ``PYTHONPATH`` to compare revisions:

    python bench/headlock.py --processes 2 --threads 8 --seconds 5
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # a script: the repository, not bench/, and after PYTHONPATH
    _HERE = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
    sys.path.append(str(_HERE.parent))

from sqlalchemy import bindparam, insert

from bench._server import create_postgres_database, drop_postgres_database
from bench._serverbound import Database


def _worker(url: str, threads: int, seconds: float, out: Any) -> None:
    from app.ledger.engine import make_engine
    from app.ledger.recording import draft, record
    from app.ledger.unit_of_work import insert_at_commit, make_session_factory
    from app.models.certificate import LedgerSubject

    columns = ("subject_type", "subject_id", "ledger_index", "action")
    stmt = insert(LedgerSubject).values({c: bindparam(c) for c in columns})
    sessions = make_session_factory(make_engine(url))
    counts = [0] * threads
    busy = [0.0] * threads
    deadline = time.monotonic() + seconds

    def loop(slot: int) -> None:
        while time.monotonic() < deadline:
            with sessions() as work:
                entry = draft(None, "bench.append", {"type": "bench", "id": str(slot)})
                started = time.perf_counter()
                appended = record(work, entry)
                insert_at_commit(work, stmt, [{"subject_type": "bench", "subject_id": str(slot),
                                               "ledger_index": appended.index,
                                               "action": "bench.append"}])
                work.commit()
                busy[slot] += time.perf_counter() - started
            counts[slot] += 1

    pool = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    out.put((sum(counts), sum(busy)))


def main() -> None:
    """Run and print one JSON line of figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--postgres-url", default=os.environ.get(
        "CADENA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    args = parser.parse_args()
    url = create_postgres_database(args.postgres_url, prefix="cadena_headlock_bench")
    try:
        from app.migrate import upgrade_to_head
        upgrade_to_head(url)
        database = Database(url)
        samples: list[int] = []
        queue: Any = multiprocessing.get_context("spawn").Queue()
        procs = [multiprocessing.get_context("spawn").Process(
            target=_worker, args=(url, args.threads, args.seconds, queue))
            for _ in range(args.processes)]
        started = time.perf_counter()
        with database.lock_sampler(samples):
            for proc in procs:
                proc.start()
            results = [queue.get() for _ in procs]
        elapsed = time.perf_counter() - started
        for proc in procs:
            proc.join()
        database.close()
        appends = sum(r[0] for r in results)
        in_flight = args.processes * args.threads
        print(json.dumps({
            "processes": args.processes, "threads": args.threads,
            "appends_per_s": round(appends / args.seconds, 1),
            "ms_lock_to_commit": round(1e3 * sum(r[1] for r in results) / max(appends, 1), 2),
            "lock_wait": round(sum(samples) / max(len(samples), 1) / in_flight, 3),
            "wall_s": round(elapsed, 1), "load": os.getloadavg()}))
    finally:
        drop_postgres_database(args.postgres_url, url)


if __name__ == "__main__":
    main()
