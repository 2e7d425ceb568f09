"""Soak: sustained mixed load with periodic SIGKILL and restart, then a full audit.

Not a test (it runs for ten minutes or more, outside CI). A real
``cadena-server serve`` on loopback (SQLite, or PostgreSQL with ``--workers``)
takes a steady mixed load from sender/recipient pairs (upload, submit,
retrieve, download, signed receipt) while it is killed with SIGKILL at random
intervals and restarted. At the end it checks that no 2xx was lost and that
no entry records a phantom action (``tests.reliability.traffic.audit``), that
every checkpoint published before a kill is a prefix of the final tree, and
runs ``cadena-server ledger verify``. It prints requests/s held (per minute),
p99 latency, kills survived, 2xx lost, the verification result and the
server's memory over each life between kills.

    python -m bench.soak --minutes 10
    python -m bench.soak --minutes 10 --database postgresql://postgres@127.0.0.1:5432/postgres \\
        --workers 2
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench._server import create_postgres_database, drop_postgres_database
from ledger import NoteVerifier
from tests.reliability.harness import (
    Server,
    ServerConfig,
    assert_no_secrets,
    enrol_cast,
    new_coordinator,
    run_cli,
    secrets_of,
)
from tests.reliability.traffic import (
    Stats,
    Traffic,
    audit,
    check_checkpoints,
    published_checkpoint,
)

MARKER = "SOAK-PLAINTEXT-MARKER"
MiB = 1024 * 1024


@dataclass
class Life:
    """One life of the server between two kills: how long, and its memory."""

    seconds: float
    rss_first: int
    rss_last: int
    rss_peak: int


class Sampler:
    """Samples the server's resident memory every ``period`` seconds, per life."""

    def __init__(self, server: Server, period: float = 2.0) -> None:
        self.server, self.period = server, period
        self.samples: list[int] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(self.period):
            rss = self.server.rss_bytes()
            if rss:
                self.samples.append(rss)

    def start(self) -> None:
        """Start sampling."""
        self.thread.start()

    def finish(self, began: float) -> Life:
        """Stop sampling; the life's figures (the first samples are the warm-up)."""
        self.stop.set()
        self.thread.join(timeout=5)
        samples = self.samples or [0]
        warm = samples[min(len(samples) - 1, 5):] or samples
        return Life(time.monotonic() - began, warm[0], warm[-1], max(samples))


def per_minute(stats: Stats, began: float, ended: float) -> list[float]:
    """Requests answered per second, averaged over each whole minute of the run."""
    minutes = int((ended - began) // 60)
    counts = [0] * max(1, minutes)
    for moment in stats.answered_at:
        slot = int((moment - began) // 60)
        if slot < len(counts):
            counts[slot] += 1
    return [c / 60 for c in counts]


def soak(args: argparse.Namespace) -> int:
    """Run the soak; print the figures; 0 if nothing was lost and the ledger verifies."""
    root = Path(tempfile.mkdtemp(prefix="cadena-soak-"))
    database = (create_postgres_database(args.database, "cadena_soak")
                if args.database else None)
    config = ServerConfig(data_dir=root / "data", database_url=database, workers=args.workers,
                          checkpoint_interval=1.0)
    rng = random.Random(args.seed)
    coordinator, verifier_key = new_coordinator(config)
    server = Server(config, root / "server.log")
    server.start()
    lives: list[Life] = []
    notes: list[str] = []
    try:
        cast = enrol_cast(server.url, coordinator, verifier_key, args.pairs)
        began = time.monotonic()
        deadline = began + args.minutes * 60
        traffic = Traffic(server.url, cast.pairs, cast.channel, packets_per_pair=10**9,
                          deadline=deadline, marker=MARKER, size=args.size)
        traffic.start()
        while True:
            life_began = time.monotonic()
            sampler = Sampler(server)
            sampler.start()
            pause = rng.uniform(args.kill_every * 0.5, args.kill_every * 1.5)
            time.sleep(max(0.0, min(pause, deadline - time.monotonic())))
            lives.append(sampler.finish(life_began))
            if time.monotonic() >= deadline - 5:
                break
            note = published_checkpoint(server.url)
            if note is not None:
                notes.append(note)
            server.kill()
            time.sleep(rng.uniform(0.0, 1.0))
            server.start()
        traffic.join(timeout=120)
        ended = time.monotonic()
        stats = traffic.stats
        result = audit(config.url(), config.data_dir / "blobs", stats.acks)
        size = check_checkpoints(server, config, cast.auditor.auth,
                                 NoteVerifier.from_string(verifier_key), notes)
    finally:
        server.stop()
    verified = run_cli(config, "ledger", "verify")
    assert_no_secrets(server.log_text(), secrets_of(cast.people(), config, [MARKER]))
    rates = per_minute(stats, began, ended)
    print(f"soak: {args.minutes} min, backend "
          f"{'postgresql x' + str(args.workers) if database else 'sqlite'}, "
          f"{args.pairs} client pairs, seed {args.seed}")
    print(f"requests:        {stats.requests} ({stats.ok} 2xx, {stats.errors} without answer "
          f"while the server was down)")
    print(f"requests/s held: min {min(rates):.1f}, median {statistics.median(rates):.1f} per "
          f"minute; {stats.requests / (ended - began):.1f} overall")
    print(f"p99 latency:     {stats.p99() * 1000:.0f} ms (p50 "
          f"{statistics.median(stats.latencies) * 1000:.0f} ms)")
    print(f"kills survived:  {server.starts - 1} (SIGKILL, restart each time)")
    print(f"2xx lost:        0 of {result.acks} acknowledged (audit passed)")
    print(f"ledger:          {result.entries} entries, {result.packets} packets, "
          f"{result.receipts} receipts, {len(notes)} checkpoints from before kills consistent "
          f"with the final one (size {size})")
    print(f"ledger verify:   {verified.strip().splitlines()[-1]}")
    for i, life in enumerate(lives):
        print(f"memory life {i}:  {life.seconds:.0f} s, RSS {life.rss_first / MiB:.1f} -> "
              f"{life.rss_last / MiB:.1f} MiB (peak {life.rss_peak / MiB:.1f})")
    longest = max(lives, key=lambda life: life.seconds)
    print(f"memory growth:   {(longest.rss_last - longest.rss_first) / MiB:+.1f} MiB over the "
          f"longest life ({longest.seconds:.0f} s)")
    if database and args.database:
        drop_postgres_database(args.database, database)
    return 0


def main() -> None:
    """Parse the arguments and soak."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--database", help="PostgreSQL admin URL (a fresh database is made)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--size", type=int, default=4096, help="attachment bytes per packet")
    parser.add_argument("--kill-every", type=float, default=60,
                        help="mean seconds between kills")
    parser.add_argument("--seed", type=int, default=20261122)
    raise SystemExit(soak(parser.parse_args()))


if __name__ == "__main__":
    main()
