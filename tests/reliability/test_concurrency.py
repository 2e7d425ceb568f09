"""Concurrency: four worker processes, thirty-two clients, one linear ledger.

On PostgreSQL, several API processes append to one ledger (serialized by the
ledger head row lock; docs/operations.md). Under a bounded burst of mixed
requests from many clients at once, the ledger must end with exactly one entry
per request, indexes 0..n-1 with neither gap nor duplicate, one hash chain (no
fork), and every checkpoint any process signed on the way must be a prefix of
the final tree.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import httpx
import pytest

from ledger import NoteVerifier, open_checkpoint
from tests.conftest import fresh_database_url
from tests.reliability.harness import (
    Person,
    Server,
    ServerConfig,
    assert_no_secrets,
    enrol_cast,
    new_coordinator,
    packet_id_of,
    read_entries,
    run_cli,
    seal,
    secrets_of,
    upload_and_submit,
)
from tests.reliability.traffic import Stats, audit, leaf_hashes, tree_root

WORKERS = 4
CLIENTS = 32
OPS_PER_CLIENT = 10
PAIRS = 8


def _client(base_url: str, sender: Person, recipient: Person, channel: str, known: str,
            stats: Stats, rng: random.Random, barrier: threading.Barrier) -> None:
    barrier.wait(timeout=60)
    with httpx.Client(base_url=base_url, timeout=30) as http:
        ops = 0
        while ops < OPS_PER_CLIENT:
            kind = rng.choice(["submit", "retrieve", "list"])
            began = time.monotonic()
            if kind == "submit":
                sealed = seal(sender, [recipient], channel, "CONCURRENCY")
                for i, response in enumerate(upload_and_submit(http, sender, sealed)):
                    submit = i == len(sealed.streams)
                    subject = (packet_id_of(sealed) if submit
                               else str(response.request.url).rsplit("/", 1)[-1])
                    stats.saw(response, time.monotonic() - began,
                              "packet.submit" if submit else "blob.upload", subject)
                    ops += 1
            elif kind == "retrieve":
                stats.saw(http.get(f"/v1/packets/{known}", headers=recipient.auth),
                          time.monotonic() - began, "packet.retrieve", known)
                ops += 1
            else:
                stats.saw(http.get("/v1/packets", headers=recipient.auth),
                          time.monotonic() - began, "packet.list", "inbox")
                ops += 1


@pytest.mark.postgres
def test_many_workers_and_clients_append_one_linear_ledger(
        request: pytest.FixtureRequest, tmp_path: Path) -> None:
    url = fresh_database_url("postgresql", request, tmp_path)
    config = ServerConfig(data_dir=tmp_path / "data", database_url=url, workers=WORKERS,
                          checkpoint_interval=0.5)
    coordinator, verifier_key = new_coordinator(config)
    server = Server(config, tmp_path / "server.log")
    server.start()
    try:
        cast = enrol_cast(server.url, coordinator, verifier_key, PAIRS)
        known = []
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for sender, recipient in cast.pairs:
                sealed = seal(sender, [recipient], cast.channel, "CONCURRENCY")
                assert upload_and_submit(http, sender, sealed)[-1].status_code == 201
                known.append(packet_id_of(sealed))
        before = len(read_entries(url))
        stats = Stats()
        barrier = threading.Barrier(CLIENTS)
        threads = [threading.Thread(target=_client, daemon=True, args=(
            server.url, *cast.pairs[i % PAIRS], cast.channel, known[i % PAIRS], stats,
            random.Random(i), barrier)) for i in range(CLIENTS)]
        began = time.monotonic()
        for thread in threads:
            thread.start()
        notes: list[str] = []
        while any(t.is_alive() for t in threads) and time.monotonic() - began < 120:
            published = httpx.get(server.url + "/v1/ledger/checkpoint", timeout=10)
            if published.status_code == 200:
                notes.append(published.text)
            time.sleep(0.3)
        for thread in threads:
            thread.join(timeout=5)
        assert not any(t.is_alive() for t in threads), "clients did not finish in time"
        elapsed = time.monotonic() - began
    finally:
        server.stop()
    entries = read_entries(url)
    assert stats.ok == stats.requests >= CLIENTS * OPS_PER_CLIENT, stats.statuses
    assert [e.index for e in entries] == list(range(len(entries)))
    assert len(entries) - before == stats.requests
    assert len({ack.index for ack in stats.acks}) == len(stats.acks), "two answers, one index"
    audit(url, config.data_dir / "blobs", stats.acks)
    for previous, entry in zip(entries, entries[1:], strict=False):
        assert entry.prev == previous.leaf_hash, f"fork at {entry.index}"
    run_cli(config, "ledger", "checkpoint")
    assert "ok: every entry" in run_cli(config, "ledger", "verify")
    leaves = leaf_hashes(url)
    verifier = NoteVerifier.from_string(verifier_key)
    for note in notes:
        checkpoint = open_checkpoint(note, verifier)
        assert checkpoint.root == tree_root(leaves[:checkpoint.size])
    assert_no_secrets(server.log_text(), secrets_of(cast.people(), config, ["CONCURRENCY"]))
    print(f"\n[concurrency pg workers={WORKERS} clients={CLIENTS}] requests={stats.requests} "
          f"2xx={stats.ok} entries-added={len(entries) - before} "
          f"checkpoints-seen={len(set(notes))} {stats.requests / elapsed:.0f} req/s "
          f"p99={stats.p99() * 1000:.0f} ms")
