"""One ledger under concurrent clients and several server processes stays one verifiable chain.

``cadena-server serve`` runs as a real process on a loopback port (PostgreSQL
with ``--workers 2``; SQLite with its one worker), bootstrapped through
``cadena-server bootstrap``. Four client threads each submit ten packets
(two blob uploads and the envelope ``POST``, each on a fresh connection so
that the kernel spreads them over the workers) while both workers' checkpointers
sign every 0.2 s. Once a signed checkpoint covers every answered request the
server is stopped, and then, from the database alone:

- ``cadena-server ledger verify`` exits 0;
- entries are exactly the indices 0..n-1, the last one answered is n-1, and
  every 2xx answer's ``ledger`` reference names a stored entry with that leaf
  hash (nothing acknowledged is lost, no two answers share an entry);
- there are as many ``packet.submit`` entries as 2xx submissions;
- every stored checkpoint is signed by the ledger key, its root is the RFC 9162
  root of that prefix of the entries (recomputed here naively), and an RFC
  9162 §2.1.4 consistency proof to the final checkpoint verifies.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.pool import NullPool

from app.ledger.engine import make_engine
from app.models.ledger import LEDGER_TABLES
from app.settings import Settings
from bench._server import (
    Directory,
    Liaison,
    b64,
    bootstrap,
    ledger_verify,
    serve,
    server_env,
)
from crypto import Classification, HandlingCode, LiaisonKeys, PacketMeta, SealedPacket, seal_packet
from ledger import NoteVerifier, leaf_hash, open_checkpoint, parse_entry, verify_consistency
from ledger.format.merkle import node_hash

CLIENTS = 4
SUBMISSIONS = 10
CHECKPOINT_WAIT = 30.0

pytestmark = pytest.mark.timeout(120)


@dataclass
class ClientRun:
    """What one client thread was answered."""

    submit_statuses: list[int] = field(default_factory=list)
    refs: dict[int, str] = field(default_factory=dict)  # ledger index -> leaf hash, from 2xx
    duplicates: list[int] = field(default_factory=list)

    def note(self, response: httpx.Response) -> None:
        """Keep the ledger reference of a 2xx answer."""
        if 200 <= response.status_code < 300:
            ref = response.json()["ledger"]
            if ref["index"] in self.refs:
                self.duplicates.append(ref["index"])
            self.refs[ref["index"]] = ref["leaf_hash"]


def seal(sender: Liaison, recipients: Sequence[Liaison]) -> SealedPacket:
    """A 1 KiB packet from ``sender`` to ``recipients`` in channel ``ch``."""
    meta = PacketMeta("ch", Classification("CONFIDENTIAL"), HandlingCode("H0"), "B2")
    return seal_packet(sender.keys, sender.id, {r.id: r.keys.public for r in recipients}, meta,
                       hashlib.sha256(sender.id.encode()).digest() * 32)


def submit_all(url: str, sender: Liaison, packets: Sequence[SealedPacket]) -> ClientRun:
    """Upload and submit ``packets`` one after the other, each request on a new connection."""
    run = ClientRun()
    no_keepalive = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(base_url=url, timeout=30.0, limits=no_keepalive) as http:
        for sealed in packets:
            for stream in sealed.streams:
                digest = hashlib.sha256(stream).hexdigest()
                run.note(http.put(f"/v1/blobs/{digest}", content=stream, headers=sender.auth))
            answer = http.post("/v1/packets", headers=sender.auth,
                               json={"envelope": b64(sealed.envelope.to_bytes())})
            run.submit_statuses.append(answer.status_code)
            run.note(answer)
    return run


def wait_for_checkpoint(url: str, verifier: NoteVerifier, size: int) -> int:
    """Poll the public checkpoint until a signed one covers ``size`` entries; its size."""
    deadline = time.monotonic() + CHECKPOINT_WAIT
    seen = 0
    with httpx.Client(base_url=url, timeout=10.0) as http:
        while time.monotonic() < deadline:
            answer = http.get("/v1/ledger/checkpoint")
            if answer.status_code == 200:
                seen = open_checkpoint(answer.text, verifier).size
                if seen >= size:
                    return seen
            time.sleep(0.1)
    raise AssertionError(f"no checkpoint covered {size} entries within {CHECKPOINT_WAIT} s "
                         f"(latest: {seen})")


def exchange_under_load(env: dict[str, str], workers: int) -> tuple[list[ClientRun], int, str]:
    """Bootstrap, serve, enrol, submit concurrently, wait for the covering checkpoint, stop."""
    coordinator = Liaison("coord", LiaisonKeys.generate())
    verifier_key = bootstrap(env, coordinator)
    verifier = NoteVerifier.from_string(verifier_key)
    with serve(env, workers=workers) as server:
        with httpx.Client(base_url=server.url, timeout=30.0) as http:
            directory = Directory(http, coordinator)
            directory.state("MX")
            senders = [directory.liaison(f"sender{n}", "CO") for n in range(CLIENTS)]
            recipients = [directory.liaison(name, "MX") for name in ("bob", "carol")]
            directory.channel("ch", [*senders, *recipients])
        packets = {s.id: [seal(s, recipients) for _ in range(SUBMISSIONS)] for s in senders}
        with ThreadPoolExecutor(CLIENTS) as pool:
            runs = list(pool.map(lambda s: submit_all(server.url, s, packets[s.id]), senders))
        answered = max(index for run in runs for index in run.refs) + 1
        covered = wait_for_checkpoint(server.url, verifier, answered)
        assert covered == answered, "entries appended after the last answered request"
    return runs, covered, verifier_key


# -- an independent RFC 9162 reference -------------------------------------------------


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (RFC 9162 §2.1.1)."""
    return 1 << ((n - 1).bit_length() - 1)


def mth(leaves: Sequence[bytes]) -> bytes:
    """RFC 9162 §2.1.1 Merkle Tree Hash over leaf hashes."""
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def subproof(m: int, leaves: Sequence[bytes], complete: bool) -> list[bytes]:
    """RFC 9162 §2.1.4.1 SUBPROOF(m, D[n], b)."""
    if m == len(leaves):
        return [] if complete else [mth(leaves)]
    k = _split(len(leaves))
    if m <= k:
        return [*subproof(m, leaves[:k], complete), mth(leaves[k:])]
    return [*subproof(m - k, leaves[k:], False), mth(leaves[:k])]


# -- checks on the stopped server's database -------------------------------------------


def check_ledger(env: dict[str, str], runs: list[ClientRun], final_size: int,
                 verifier_key: str) -> None:
    """Every property of the module docstring, from the database alone."""
    verified = ledger_verify(env)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    database_url = Settings(data_dir=Path(env["CADENA_DATA_DIR"]),
                            database_url=env.get("CADENA_DATABASE_URL")).resolved_database_url()
    ec, cc = LEDGER_TABLES.entries.c, LEDGER_TABLES.checkpoints.c
    engine = make_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            rows = [(int(i), bytes(raw)) for i, raw in
                    conn.execute(select(ec.index, ec.entry).order_by(ec.index))]
            checkpoints = [(int(size), bytes(root), str(note)) for size, root, note in
                           conn.execute(select(cc.size, cc.root, cc.note).order_by(cc.size))]
    finally:
        engine.dispose()
    entries = [parse_entry(raw) for _, raw in rows]
    assert [index for index, _ in rows] == list(range(final_size))
    assert [e.index for e in entries] == list(range(final_size))
    for run in runs:
        assert run.duplicates == []
        for index, leaf in run.refs.items():
            assert entries[index].leaf_hash.hex() == leaf
    answered = [i for run in runs for i in run.refs]
    assert len(answered) == len(set(answered)), "two answers name the same ledger entry"
    statuses = [s for run in runs for s in run.submit_statuses]
    assert statuses == [201] * (CLIENTS * SUBMISSIONS)
    submits = [e for e in entries if e.action == "packet.submit"]
    assert len(submits) == statuses.count(201)
    assert {e.outcome for e in submits} == {"granted"}
    check_checkpoints(checkpoints, [e.leaf_hash for e in entries], verifier_key)


def check_checkpoints(checkpoints: Sequence[tuple[int, bytes, str]], leaves: list[bytes],
                      verifier_key: str) -> None:
    """Each checkpoint: signed, the root of its prefix, consistent with the final one."""
    verifier = NoteVerifier.from_string(verifier_key)
    assert checkpoints, "no checkpoint was signed"
    final_size, final_root, _ = checkpoints[-1]
    assert final_size == len(leaves)
    assert final_root == mth(leaves)
    for size, root, note in checkpoints:
        opened = open_checkpoint(note, verifier)
        assert (opened.size, opened.root) == (size, root)
        assert root == mth(leaves[:size])
        verify_consistency(size, final_size, root, final_root, proof=subproof(size, leaves, True))
    assert len(checkpoints) > 1, "the checkpointers signed only once during the run"


# -- the tests -------------------------------------------------------------------------


@pytest.mark.postgres
def test_two_workers_on_postgresql_keep_one_consistent_ledger(postgres_url: str,
                                                              tmp_path: Path) -> None:
    env = server_env(tmp_path / "data", postgres_url, extra={
        "CADENA_CHECKPOINT_INTERVAL": "0.2", "CADENA_LEDGER_ORIGIN": "test.cadena/ledger"})
    runs, final_size, verifier_key = exchange_under_load(env, workers=2)
    check_ledger(env, runs, final_size, verifier_key)


def test_concurrent_clients_on_sqlite_keep_one_consistent_ledger(tmp_path: Path) -> None:
    env = server_env(tmp_path / "data", extra={
        "CADENA_CHECKPOINT_INTERVAL": "0.2", "CADENA_LEDGER_ORIGIN": "test.cadena/ledger"})
    runs, final_size, verifier_key = exchange_under_load(env, workers=1)
    check_ledger(env, runs, final_size, verifier_key)


def test_reference_merkle_matches_rfc9162_shapes() -> None:
    leaves = [leaf_hash(bytes([n])) for n in range(7)]
    for m in range(1, 8):
        proof = subproof(m, leaves, True)
        verify_consistency(m, 7, mth(leaves[:m]), mth(leaves), proof=proof)
