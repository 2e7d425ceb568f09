"""Mixed client load on a server, and the audit of what it acknowledged (no tests here).

:class:`Traffic` runs one thread per sender/recipient pair: upload the
streams, submit, retrieve as the recipient, download the manifest, sign and
post a receipt; again, until a count or a deadline. Every 2xx answer is kept
as an :class:`Ack` (action, ledger index and leaf hash). Connection errors are
expected while the server is down and are only counted.

:func:`audit` then checks DESIGN.md invariants 2 and 4 on the database: every
acknowledged action is there with its entry, every granted entry's action
happened, and each packet and receipt has exactly one entry.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy import table as sql_table
from sqlalchemy.pool import NullPool

from app.ledger.engine import make_engine
from ledger import NoteVerifier, open_checkpoint, verify_consistency
from ledger import leaf_hash as merkle_leaf_hash
from ledger.format.merkle import node_hash
from tests.reliability.harness import (
    Person,
    Server,
    ServerConfig,
    expect,
    packet_id_of,
    read_entries,
    run_cli,
    seal,
    signed_receipt,
    upload_and_submit,
)


@dataclass(frozen=True)
class Ack:
    """A 2xx answer: the action it acknowledged and the ledger entry it named."""

    action: str
    index: int
    leaf_hash: str
    subject: str


@dataclass
class Stats:
    """What the clients saw."""

    requests: int = 0
    ok: int = 0
    errors: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    answered_at: list[float] = field(default_factory=list)
    acks: list[Ack] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def saw(self, response: httpx.Response, elapsed: float, action: str, subject: str) -> None:
        """Count a response; keep its ack if it is a 2xx naming a ledger entry."""
        with self.lock:
            self.requests += 1
            self.statuses[response.status_code] += 1
            self.latencies.append(elapsed)
            self.answered_at.append(time.monotonic())
            if response.status_code >= 300:
                return
            self.ok += 1
            index = response.headers.get("cadena-ledger-index")
            leaf = response.headers.get("cadena-ledger-leaf-hash")
            if index is None:
                ledger = response.json()["ledger"]
                index, leaf = ledger["index"], ledger["leaf_hash"]
            self.acks.append(Ack(action, int(index), str(leaf), subject))

    def failed(self) -> None:
        """Count a request that got no answer (server down or killed mid-request)."""
        with self.lock:
            self.requests += 1
            self.errors += 1

    def p99(self) -> float:
        """99th percentile latency in seconds."""
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else 0.0


class Traffic:
    """Threads of sender/recipient pairs submitting, retrieving and acknowledging."""

    def __init__(self, base_url: str, pairs: list[tuple[Person, Person]], channel: str,
                 packets_per_pair: int, deadline: float, marker: str = "PLAINTEXT-MARKER",
                 size: int = 256) -> None:
        self.base_url = base_url
        self.pairs, self.channel = pairs, channel
        self.packets_per_pair, self.deadline = packets_per_pair, deadline
        self.marker, self.size = marker, size
        self.stats = Stats()
        self.stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(pair,), daemon=True)
                         for pair in pairs]

    def start(self) -> None:
        """Start every client thread."""
        for thread in self._threads:
            thread.start()

    def join(self, timeout: float) -> None:
        """Wait for the threads to finish (they stop by count or deadline)."""
        end = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, end - time.monotonic()))
        if any(t.is_alive() for t in self._threads):
            raise AssertionError("client threads did not stop in time")

    def alive(self) -> bool:
        """Whether some client is still working."""
        return any(t.is_alive() for t in self._threads)

    def _call(self, http: httpx.Client, action: str, subject: str, method: str, url: str,
              **kw: Any) -> httpx.Response | None:
        began = time.monotonic()
        try:
            response = http.request(method, url, **kw)
        except httpx.HTTPError:
            self.stats.failed()
            return None
        self.stats.saw(response, time.monotonic() - began, action, subject)
        return response

    def _run(self, pair: tuple[Person, Person]) -> None:
        sender, recipient = pair
        done = 0
        with httpx.Client(base_url=self.base_url, timeout=10) as http:
            while done < self.packets_per_pair:
                if self.stop.is_set() or time.monotonic() > self.deadline:
                    return
                if self._one_packet(http, sender, recipient):
                    done += 1
                else:  # the server is down: wait a little for it to come back
                    time.sleep(0.2)

    def _one_packet(self, http: httpx.Client, sender: Person, recipient: Person) -> bool:
        """One packet's round; False if its submission got no answer at all."""
        sealed = seal(sender, [recipient], self.channel, self.marker, self.size)
        packet = packet_id_of(sealed)
        began = time.monotonic()
        try:
            responses = upload_and_submit(http, sender, sealed)
        except httpx.HTTPError:
            self.stats.failed()
            return False
        elapsed = (time.monotonic() - began) / max(1, len(sealed.streams) + 1)
        for i, response in enumerate(responses):
            is_submit = i == len(sealed.streams)
            subject = packet if is_submit else str(response.request.url).rsplit("/", 1)[-1]
            self.stats.saw(response, elapsed, "packet.submit" if is_submit else "blob.upload",
                           subject)
        if len(responses) <= len(sealed.streams) or responses[-1].status_code != 201:
            return True
        got = self._call(http, "packet.retrieve", packet, "GET", f"/v1/packets/{packet}",
                         headers=recipient.auth)
        if got is None or got.status_code != 200:
            return True
        began = time.monotonic()
        try:
            download, body = signed_receipt(http, sender, recipient, packet, got.json())
        except httpx.HTTPError:
            self.stats.failed()
            return True
        self.stats.saw(download, time.monotonic() - began, "packet.download", packet)
        if body is not None:
            self._call(http, "packet.receipt", packet, "POST", f"/v1/packets/{packet}/receipts",
                       headers=recipient.auth, json=body)
        return True


@dataclass
class AuditResult:
    """What the database holds after a run."""

    entries: int
    packets: int
    receipts: int
    acks: int


def _rows(url: str, name: str, *columns: str) -> set[tuple[Any, ...]]:
    from sqlalchemy import column

    engine = make_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(sql_table(name, *[column(c) for c in columns])))
            return {tuple(row) for row in rows}
    finally:
        engine.dispose()


def audit(url: str, blob_root: Path, acks: list[Ack]) -> AuditResult:
    """Check that nothing acknowledged is lost and no entry records a phantom action."""
    entries = read_entries(url)
    assert [e.index for e in entries] == list(range(len(entries))), "ledger has index gaps"
    for ack in acks:
        assert ack.index < len(entries), f"acknowledged entry {ack.index} is lost"
        entry = entries[ack.index]
        assert entry.leaf_hash.hex() == ack.leaf_hash, f"entry {ack.index} differs from its ack"
        assert (entry.action, entry.outcome) == (ack.action, "granted"), entry
        assert entry.subject["id"] == ack.subject, (entry.subject, ack)
    packets = {row[0] for row in _rows(url, "packets", "id")}
    receipts = _rows(url, "packet_receipts", "packet_id", "recipient_id")
    tokens = {row[0] for row in _rows(url, "auth_tokens", "id")}
    granted = [e for e in entries if e.outcome == "granted"]
    submitted = [e.subject["id"] for e in granted if e.action == "packet.submit"]
    received = [(e.subject["id"], e.actor.liaison if e.actor else "")
                for e in granted if e.action == "packet.receipt"]
    assert sorted(submitted) == sorted(packets), "packets and packet.submit entries differ"
    assert sorted(received) == sorted(receipts), "receipts and packet.receipt entries differ"
    for entry in granted:
        if entry.action == "auth.login":
            assert entry.details["token"] in tokens, entry
        if entry.action == "blob.upload":
            sha = entry.subject["id"]
            assert (blob_root / sha[:2] / sha[2:4] / sha).is_file(), f"blob {sha} is missing"
        if entry.action in ("packet.retrieve", "packet.download", "packet.receipt"):
            assert entry.subject["id"] in packets, entry
    return AuditResult(len(entries), len(packets), len(receipts), len(acks))


def tree_root(leaves: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1 MTH over leaf hashes, computed naively (a cross-check of the server)."""
    if not leaves:
        raise ValueError("no root for an empty tree here")
    if len(leaves) == 1:
        return leaves[0]
    split = 1 << ((len(leaves) - 1).bit_length() - 1)
    return node_hash(tree_root(leaves[:split]), tree_root(leaves[split:]))


def leaf_hashes(url: str) -> list[bytes]:
    """The leaf hash of every entry, recomputed from the stored bytes."""
    return [merkle_leaf_hash(e.raw) for e in read_entries(url)]


def published_checkpoint(url: str) -> str | None:
    """The latest signed checkpoint the server publishes, or None."""
    try:
        response = httpx.get(url + "/v1/ledger/checkpoint", timeout=5)
    except httpx.HTTPError:
        return None
    return response.text if response.status_code == 200 else None


def check_checkpoints(server: Server, config: ServerConfig, auditor_auth: dict[str, str],
                       verifier: NoteVerifier, notes: list[str]) -> int:
    """Sign a final checkpoint; every published one must be a prefix of it. The final size."""
    run_cli(config, "ledger", "checkpoint")
    leaves = leaf_hashes(config.url())
    final = open_checkpoint(published_checkpoint(server.url) or "", verifier)
    assert final.size == len(leaves)
    assert final.root == tree_root(leaves)
    for note in notes:
        old = open_checkpoint(note, verifier)
        assert old.root == tree_root(leaves[:old.size]), "a published checkpoint forked"
        if old.size == final.size:
            continue
        proof = expect(httpx.get(
            f"{server.url}/v1/ledger/proofs/consistency",
            params={"from": old.size, "to": final.size}, headers=auditor_auth, timeout=10), 200)
        verify_consistency(old.size, final.size, old.root, final.root,
                           proof=[bytes.fromhex(h) for h in proof["proof"]])
    return final.size
