"""Crash safety: SIGKILL the server under load, restart it, and lose nothing acknowledged.

DESIGN.md invariant 4 (a 2xx answer survives a crash of any process) and 2
(no action without its entry, no entry without its action), on a real server
process: SQLite with one process, PostgreSQL with two uvicorn workers. Several
clients submit, retrieve, download and acknowledge packets while the server
is killed with SIGKILL at random moments, at least three times, and restarted
each time. Afterwards every 2xx is in the database with its ledger entry,
``cadena-server ledger verify`` passes, and every checkpoint published before
a crash is a prefix of the final tree (recomputed here, and by a consistency
proof from the restarted server).
"""

from __future__ import annotations

import random
import secrets
import time
from pathlib import Path

import pytest

from ledger import NoteVerifier
from tests.conftest import fresh_database_url
from tests.reliability.harness import (
    Server,
    ServerConfig,
    assert_no_secrets,
    enrol_cast,
    new_coordinator,
    run_cli,
    secrets_of,
)
from tests.reliability.traffic import Traffic, audit, check_checkpoints, published_checkpoint

KILLS = 3
PAIRS = 4
PACKETS_PER_PAIR = 12
MARKER = "CRASH-PLAINTEXT-MARKER"


def _run_with_kills(server: Server, traffic: Traffic, rng: random.Random) -> list[str]:
    """Kill and restart the server ``KILLS`` times while ``traffic`` runs; published notes."""
    notes = []
    for _ in range(KILLS):
        time.sleep(rng.uniform(0.8, 2.5))
        note = published_checkpoint(server.url)
        if note is not None:
            notes.append(note)
        server.kill()
        time.sleep(rng.uniform(0.0, 0.5))
        server.start()
    traffic.join(timeout=120)
    return notes


@pytest.mark.parametrize(("backend", "workers"), [("sqlite", 1), ("postgresql", 2)])
def test_sigkill_under_load_loses_nothing_acknowledged(
        backend: str, workers: int, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    seed = secrets.randbits(32)
    rng = random.Random(seed)
    url = None if backend == "sqlite" else fresh_database_url(backend, request, tmp_path)
    config = ServerConfig(data_dir=tmp_path / "data", database_url=url, workers=workers)
    coordinator, verifier_key = new_coordinator(config)
    server = Server(config, tmp_path / "server.log")
    server.start()
    try:
        cast = enrol_cast(server.url, coordinator, verifier_key, PAIRS)
        traffic = Traffic(server.url, cast.pairs, cast.channel, PACKETS_PER_PAIR,
                          deadline=time.monotonic() + 90, marker=MARKER)
        traffic.start()
        notes = _run_with_kills(server, traffic, rng)
        stats = traffic.stats
        result = audit(config.url(), config.data_dir / "blobs", stats.acks)
        size = check_checkpoints(server, config, cast.auditor.auth,
                                  NoteVerifier.from_string(verifier_key), notes)
    finally:
        server.stop()
    verified = run_cli(config, "ledger", "verify")
    assert "ok: every entry, node and checkpoint verifies" in verified
    assert_no_secrets(server.log_text(), secrets_of(cast.people(), config, [MARKER]))
    print(f"\n[crash {backend} x{workers}] seed={seed} requests={stats.requests} "
          f"2xx={stats.ok} no-answer={stats.errors} kills={server.starts - 1} "
          f"entries={result.entries} packets={result.packets} receipts={result.receipts} "
          f"checkpoints-before-crashes={len(notes)} final-size={size}")
    assert server.starts - 1 >= KILLS
    assert result.packets > 0
    assert result.receipts > 0
