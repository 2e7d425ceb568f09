"""Benchmark key transparency on the client: per recipient key, and a login's self-check.

Not a test. Builds, in memory, a ledger of ``--entries`` directory entries
(enrolments of many liaisons; the benchmark's own liaison enrolled and then
rotated ``--rotations`` times with real signatures, its entries spread
through the ledger), signs a checkpoint, has a witness cosign it, and serves
directory answers (JSON, as ``GET /v1/directory/{id}`` does) from memory, so
that only the client's work is timed (no network, no server):

* **per recipient key** (a sender): one :class:`KeyTransparency` for the
  command; the checkpoint (signature, cosignature, consistency with the
  last one seen) is verified once and cached; each further recipient costs
  parsing the answer, the RFC 9162 inclusion proof of its entries, and its
  key chain. Budget: < 5 ms per key.
* **a login's self-check** at ``--entries`` directory entries: a fresh
  :class:`KeyTransparency` (nothing cached): checkpoint signature and
  quorum, consistency proof from a checkpoint ``--behind`` entries older,
  inclusion of each of the liaison's key entries, the chain of rotations
  (two Ed25519 verifications each), the comparison with the keys held, and
  the scan of the key log (docs/protocol.md §11.8): *incremental*, from the
  scan state the previous login kept, ``--new-leaves`` key entries ago
  (default 1,000: the centre's whole directory changes far less between two
  logins of one liaison), and *first ever* (every leaf from 0, a new
  profile). Budget for an incremental login: < 50 ms.
* with ``--server``, the server's side of that answer: the same entries in
  a SQLite database (migrated, written through ``app.ledger.recording.record_many``),
  and the directory service call (index query, entries, proofs, the logged
  read), without HTTP.

Usage: ``.venv/bin/python bench/keys.py [--entries 100000] [--recipients 200] [--server]
[--json out.json]``
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nacl.signing import SigningKey

from app.auth.service import Principal
from app.directory import service as directory
from app.ledger.engine import make_engine
from app.ledger.keylog import key_log_for
from app.ledger.recording import ledger_for, record_many
from app.ledger.unit_of_work import make_session_factory, transaction
from app.liaisons.rotation import entry_details
from app.liaisons.service import enrolment_details
from app.migrate import upgrade_to_head
from app.models.identity import Role
from client.keylog import KeyLogScan, MemoryScans
from client.models import DirectoryPage, KeyLeavesPage, parse
from client.transparency import (
    DirectoryAPI,
    KeyTransparency,
    MemoryCheckpoints,
    SeenCheckpoint,
    self_check,
)
from client.trust import TrustRoots
from crypto import LiaisonKeys, LiaisonPublicKeys, RotationStatement, sign_rotation
from ledger import (
    Actor,
    CosignatureSigner,
    EntryDraft,
    KeyLogFrontier,
    Ledger,
    MemoryKeyLog,
    MemoryStorage,
    NoteSigner,
    NoteVerifier,
    TreeCache,
    add_signature_lines,
    key_log_head,
    merkle,
    open_checkpoint,
    prepare_keyed_checkpoint,
)

ORIGIN = "bench.cadena.example/ledger"
LOG = NoteSigner(ORIGIN, SigningKey(bytes([7]) * 32))
LOG_VERIFIER = NoteVerifier.from_string(LOG.verifier_key())
WITNESS = CosignatureSigner("witness.bench.example/w1", SigningKey(bytes([9]) * 32))
ME = "mx-fgr-me"
KEY_POOL = 512  # distinct key sets cycled through the other liaisons' enrolments
BATCH = 5_000


def _draft(actor: Actor | None, action: str, liaison: str, details: dict[str, Any],
           signature: str | None = None) -> EntryDraft:
    return EntryDraft(time=datetime(2026, 12, 6, 18, 0, tzinfo=UTC), actor=actor, action=action,
                      subject={"type": "liaison", "id": liaison}, outcome="granted",
                      details=details, signature=signature)


def _rotation(current: LiaisonKeys, new: LiaisonKeys, n: int) -> EntryDraft:
    statement = RotationStatement(ORIGIN, ME, f"{n:032x}", bytes([n % 256]) * 32,
                                  bytes(SigningKey(bytes([n % 256 + 1]) * 32).verify_key),
                                  current.public.key_id, new.public)
    signed = sign_rotation(statement, current, new)
    return _draft(Actor(liaison=ME, key=current.public.key_id), "key.rotate", ME,
                  entry_details(signed, current.public.key_id, new.public),
                  base64.b64encode(signed.signature).decode())


@dataclass
class World:
    """The in-memory ledger, its two checkpoints, and who holds which entries."""

    ledger: Ledger
    keys: MemoryKeyLog
    size: int
    note: str
    seen: SeenCheckpoint
    indexes: dict[str, list[int]]
    my_keys: list[LiaisonKeys]


def key_drafts(entries: int, rotations: int) -> tuple[list[EntryDraft], list[LiaisonKeys],
                                                      dict[str, list[int]]]:
    """``entries`` key entries: other liaisons' enrolments, ours spread through them."""
    pool = [LiaisonKeys.from_secret_bytes(os.urandom(64)) for _ in range(KEY_POOL)]
    mine = [LiaisonKeys.from_secret_bytes(os.urandom(64)) for _ in range(rotations + 1)]
    step = max(entries // (rotations + 1), 1)
    positions = {p * step + step // 2: p for p in range(rotations + 1)}
    indexes: dict[str, list[int]] = {ME: []}
    drafts: list[EntryDraft] = []
    for n in range(entries):
        k = positions.get(n)
        if k is not None:
            drafts.append(_draft(None, "liaison.enrol", ME, enrolment_details(
                "MX", Role.PROSECUTOR, mine[0].public)) if k == 0 else
                _rotation(mine[k - 1], mine[k], k))
            indexes[ME].append(n)
        else:
            name = f"liaison-{n}"
            drafts.append(_draft(None, "liaison.enrol", name, enrolment_details(
                "CO", Role.PROSECUTOR, pool[n % KEY_POOL].public)))
            indexes[name] = [n]
    return drafts, mine, indexes


def build(drafts: list[EntryDraft], mine: list[LiaisonKeys], indexes: dict[str, list[int]],
          behind: int) -> World:
    """The in-memory ledger of ``drafts``, checkpoints at ``len - behind`` and at the end."""
    ledger, keys = Ledger(MemoryStorage()), MemoryKeyLog()
    entries = len(drafts)
    for start in range(0, entries, BATCH):
        ledger.append_many(drafts[start:start + BATCH])
        if ledger.storage.size() == entries - behind:
            keys.checkpoint(ledger.storage, LOG, ORIGIN)
    old = ledger.storage.checkpoint_at(entries - behind)
    latest = keys.checkpoint(ledger.storage, LOG, ORIGIN)
    if old is None or latest is None:
        raise SystemExit("--entries and --behind must be multiples of 5000, behind < entries")
    checkpoint = open_checkpoint(latest.note, LOG_VERIFIER)
    note = add_signature_lines(latest.note, [WITNESS.cosign(checkpoint, 1_765_000_000)])
    opened = open_checkpoint(old.note, LOG_VERIFIER)
    seen = SeenCheckpoint(old.size, opened.root, old.note, key_log_head(opened))
    return World(ledger, keys, latest.size, note, seen, indexes, mine)


def server_view_ms(drafts: list[EntryDraft], behind: int, runs: int) -> float:
    """Median time of the server's directory answer for our liaison, on SQLite (in process).

    The service call of ``GET /v1/directory/{id}?since=...``: the subject
    index query, the entries, an inclusion proof each, the consistency proof,
    and the ``directory.read`` entry it appends (committed). No HTTP.
    """
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/keys.db"
        upgrade_to_head(url)
        engine = make_engine(url)
        factory = make_session_factory(engine, TreeCache())
        for start in range(0, len(drafts), BATCH):
            with transaction(factory) as session:
                record_many(session, drafts[start:start + BATCH])
            if start + BATCH == len(drafts) - behind or start + BATCH >= len(drafts):
                with transaction(factory) as session:  # as the checkpointer signs
                    storage = ledger_for(session).storage
                    prepared = prepare_keyed_checkpoint(storage, storage.size(), LOG, ORIGIN,
                                                        key_log_for(session).base())
                    assert prepared is not None
                    storage.add_checkpoint(prepared.checkpoint)
                    key_log_for(session).store(prepared)
        me = Principal(ME, "bench", Role.PROSECUTOR, "MX")
        samples = []
        for _ in range(runs):
            start_t = time.perf_counter()
            with transaction(factory) as session:
                found = directory.view(session, me, ME, since=len(drafts) - behind)
            samples.append(time.perf_counter() - start_t)
            if not found.entries or found.consistency is None:
                raise SystemExit("the server's answer lacks our entries or the consistency proof")
        engine.dispose()
    return statistics.median(samples) * 1e3


def page_json(world: World, liaison: str) -> dict[str, Any]:
    """The directory's answer for ``liaison`` (what the server sends), proofs included."""
    ledger, size, keys = world.ledger, world.size, world.keys
    raws = {i: next(ledger.storage.entries(i, i + 1)) for i in world.indexes[liaison]}
    at = {leaf.ledger_index: n for n, leaf in enumerate(keys.leaves)}
    key_size, old = keys.heads[size].size, world.seen.key_log
    assert old is not None
    return {"liaison_id": liaison, "checkpoint": world.note, "tree_size": size,
            "since": world.seen.size,
            "consistency": [h.hex() for h in ledger.consistency_proof(world.seen.size, size)],
            "key_since": old.size,
            "key_consistency": [h.hex() for h in
                                merkle.consistency_proof(keys, old.size, key_size)],
            "entries": [{"index": i, "entry": base64.b64encode(raw).decode(), "key": None,
                         "proof": [h.hex() for h in ledger.inclusion_proof(i, size)],
                         "key_log_index": at[i],
                         "key_log_proof": [h.hex() for h in
                                           merkle.inclusion_proof(keys, at[i], key_size)]}
                        for i, raw in raws.items()]}


class Served(DirectoryAPI):
    """Directory answers from memory, parsed as the client parses the server's JSON."""

    def __init__(self, pages: dict[str, dict[str, Any]],
                 leaves: list[str] | None = None) -> None:
        """Serve ``pages`` (liaison id → JSON answer) and key-log ``leaves`` (base64)."""
        self._pages = pages
        self._leaves = leaves or []

    def read(self, liaison_id: str, *, start: int = 0, since: int | None = None,
             witnessed: int = 0, key_since: int | None = None) -> DirectoryPage:
        """The stored answer, parsed."""
        return parse(DirectoryPage, self._pages[liaison_id])

    def key_leaves(self, start: int) -> KeyLeavesPage:
        """A page of 10,000 leaves (the server's bound), parsed from JSON."""
        return parse(KeyLeavesPage, {"start": start,
                                     "leaves": self._leaves[start:start + 10_000]})


def _roots() -> TrustRoots:
    return TrustRoots.parse(LOG.verifier_key(), [WITNESS.verifier_key()], 1)


def per_recipient_ms(world: World, recipients: int) -> tuple[float, float]:
    """(first key incl. the checkpoint, mean of the others) for one sender, in ms."""
    names = [f"liaison-{n}" for n in range(world.size) if f"liaison-{n}" in world.indexes]
    names = names[:recipients + 1]
    pages = {name: page_json(world, name) for name in names}
    kt = KeyTransparency(Served(pages), _roots(), MemoryCheckpoints(world.seen))
    keys = {name: _enrolled(pages[name]) for name in names}
    start = time.perf_counter()
    kt.check(names[0], keys[names[0]], current=True)
    first = time.perf_counter() - start
    start = time.perf_counter()
    for name in names[1:]:
        kt.check(name, keys[name], current=True)
    rest = (time.perf_counter() - start) / max(len(names) - 1, 1)
    return first * 1e3, rest * 1e3


def _enrolled(page: dict[str, Any]) -> LiaisonPublicKeys:
    details = json.loads(base64.b64decode(page["entries"][0]["entry"]))["details"]
    return LiaisonPublicKeys(signing=base64.b64decode(details["signing_public"]),
                             encryption=base64.b64decode(details["encryption_public"]))


def self_check_ms(world: World, runs: int, new_leaves: int) -> tuple[float, float]:
    """Medians of a login's self-check, nothing cached but the scan state: (incremental, first).

    Incremental: the previous login scanned the key log up to ``new_leaves``
    leaves ago; first: a new profile scans every leaf.
    """
    pages = {ME: page_json(world, ME)}
    leaves = [base64.b64encode(leaf.encode()).decode() for leaf in world.keys.leaves]
    held = [k.public for k in world.my_keys]
    before = _scanned_at(world, new_leaves)
    incremental: list[float] = []
    first: list[float] = []
    for run in range(runs):
        for scans, samples in ((MemoryScans(before), incremental), (MemoryScans(), first)):
            if samples is first and run >= max(runs // 10, 3):
                continue
            kt = KeyTransparency(Served(pages, leaves), _roots(), MemoryCheckpoints(world.seen))
            start = time.perf_counter()
            self_check(kt, ME, held, scans=scans)
            samples.append(time.perf_counter() - start)
    return statistics.median(incremental) * 1e3, statistics.median(first) * 1e3


def _scanned_at(world: World, new_leaves: int) -> KeyLogScan:
    # What the previous login kept: the frontier ``new_leaves`` short of now.
    leaves = world.keys.leaves[:max(len(world.keys.leaves) - new_leaves, 0)]
    tree = KeyLogFrontier()
    tree.extend(leaf.hash() for leaf in leaves)
    return KeyLogScan(ME, tree.size, tree.hashes,
                      {leaf.ledger_index: leaf.ledger_leaf_hash for leaf in leaves
                       if leaf.liaison_id == ME})


def main() -> None:
    """Build the ledger, measure, print (and optionally write JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--rotations", type=int, default=10)
    parser.add_argument("--recipients", type=int, default=200)
    parser.add_argument("--behind", type=int, default=BATCH)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--new-leaves", type=int, default=1_000,
                        help="key entries since the previous login's scan")
    parser.add_argument("--server", action="store_true",
                        help="also time the server's answer on SQLite (slower to set up)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    started = time.perf_counter()
    drafts, mine, indexes = key_drafts(args.entries, args.rotations)
    world = build(drafts, mine, indexes, args.behind)
    built = time.perf_counter() - started
    first, per_key = per_recipient_ms(world, args.recipients)
    check, first_scan = self_check_ms(world, args.runs, args.new_leaves)
    server = server_view_ms(drafts, args.behind, args.runs) if args.server else None
    figures = {"entries": world.size, "build_s": round(built, 1),
               "first_key_ms": round(first, 3), "per_recipient_key_ms": round(per_key, 3),
               "self_check_ms": round(check, 3), "first_scan_ms": round(first_scan, 3),
               "key_log_leaves": len(world.keys.leaves), "new_leaves": args.new_leaves,
               "own_key_entries": len(world.indexes[ME]),
               "recipients": args.recipients,
               "server_answer_ms": None if server is None else round(server, 3)}
    print(f"ledger: {world.size} directory entries (built in {built:.1f} s); "
          f"own liaison: {len(world.indexes[ME])} key entries")
    print(f"sender, first recipient key (checkpoint + quorum + consistency): {first:.3f} ms")
    print(f"sender, per further recipient key (proofs cached per checkpoint): "
          f"{per_key:.3f} ms  (budget < 5 ms)")
    print(f"login self-check at {world.size} entries, incremental ({args.new_leaves} new key-log "
          f"leaves since the last scan): {check:.3f} ms  (budget < 50 ms)")
    print(f"login self-check, first-ever scan of all {len(world.keys.leaves)} key-log leaves: "
          f"{first_scan:.3f} ms")
    if server is not None:
        print(f"server: the directory answer for the same liaison on SQLite at {world.size} "
              f"entries (service call, no HTTP): {server:.3f} ms")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
