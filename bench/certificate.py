"""Certificate benchmark: from the issue request to a valid certificate, with two witnesses.

Not a test. Runs the real service in-process (FastAPI ``TestClient``, its own
checkpointer and witness collector threads at ``--interval``, default 1 s) on
a SQLite file with the production settings of ``app/ledger/engine.py`` (WAL,
``synchronous=FULL``), bootstrapped like a new centre, with a witness quorum
of two: two ``cadena witness serve`` processes on loopback, registered by the
coordinator. At each ledger size in ``--sizes`` it first grows the ledger
with filler entries about other packets (appended through
``ledger.store.log.Ledger`` in committed batches, indexed in ``ledger_subjects``
like real ones, a checkpoint after each batch), then, for ``--packets``
fresh packets (a fresh centre per size, filled before it starts), plays a
history of nine ledger entries per packet —
submission, key delivery, three ciphertext downloads, a signed receipt, an
onward share, the new holder's key delivery, the originator reading
receipts — and measures:

- to valid: from ``POST /v1/packets/{id}/certificates`` to the sealed bundle
  of ``GET /v1/certificates/{id}``, polling as ``cadena certificate issue``
  does (every ``Retry-After`` seconds) and, to show when the server has it
  ready, every 50 ms; median and worst over the packets (target ≤ 3 s at a
  1 s interval);
- issue: the ``POST`` alone (the rules, the issue entry, the commit), median;
- seal: the ``GET`` that finds the cosigned checkpoint, builds, seals and
  stores the bundle, median;
- verify: ``client.certificate.verify.check_certificate`` on the bytes, every
  check, the pinned seal key, median of ``--repeat`` runs (wall, CPU);
- size: the bundle's bytes.

Usage: ``python bench/certificate.py [--sizes 1000,100000] [--packets 5] [--interval 1]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastapi.testclient import TestClient
from sqlalchemy import insert
from sqlalchemy.pool import NullPool

from app.bootstrap import Coordinator, bootstrap
from app.ledger.checkpointer import sign_once
from app.ledger.engine import make_engine
from app.ledger.key import load_note_signer
from app.ledger.unit_of_work import make_session_factory, transaction
from app.main import create_app
from app.migrate import upgrade_to_head
from app.models.certificate import LedgerSubject
from app.models.ledger import LEDGER_TABLES
from app.settings import Settings
from bench.ledger import make_drafts
from client.certificate.verify import Trust, check_certificate
from crypto import LiaisonKeys, make_receipt, share_content_key
from custody import parse_bundle, seal_key
from ledger import Ledger
from ledger.sql import SqlStorage
from tests.app.conftest import Person, World
from tests.app.test_packets_support import Exchange, exchange, opened_by, signed_body
from tests.certificates.witness_processes import witnesses

BATCH = 5_000
ORIGIN = "bench.cadena.example/ledger"


@dataclass
class Row:
    """The figures at one ledger size."""

    size: int
    valid_ms: list[float]
    ready_ms: list[float]
    issue_ms: list[float]
    seal_ms: list[float]
    verify_ms: float
    verify_cpu_ms: float
    bytes: int
    events: int


class Centre:
    """A bootstrapped service on a SQLite file, two witnesses, its ledger for filler appends."""

    def __init__(self, workdir: Path, interval: float, stack: ExitStack, filled: int) -> None:
        """Migrate, bootstrap, fill to ``filled`` entries, then start the service and two
        witnesses in ``workdir`` (filling first: the filler appends outside the service,
        whose checkpointer must not run beside them)."""
        url = f"sqlite:///{workdir / 'cadena.db'}"
        upgrade_to_head(url)
        self.settings = Settings(data_dir=workdir, database_url=url, ledger_origin=ORIGIN,
                                 checkpoint_interval=interval, witness_quorum=2,
                                 log_level="error")
        self.engine = make_engine(url, poolclass=NullPool)
        self.sessions = make_session_factory(self.engine)
        coordinator = Person("coord", LiaisonKeys.generate())
        with transaction(self.sessions) as session:
            bootstrap(session, self.settings.resolved_ledger_key_path(), ORIGIN,
                      Coordinator("coord", "First Coordinator", "CO", "Colombia",
                                  "Chapultepec/2012", coordinator.keys.public))
        self.signer = load_note_signer(self.settings.resolved_ledger_key_path(), ORIGIN)
        self.size = self.ledger_size()
        self.fill_to(filled)
        nodes = stack.enter_context(witnesses(workdir / "witnesses", self.signer.verifier_key(),
                                              2))
        self.client = stack.enter_context(TestClient(create_app(self.settings)))
        self.world = World(self.client, self.settings, coordinator)
        self.world.login(coordinator)
        for node in nodes:
            _ok(self.client.post("/v1/witnesses", headers=coordinator.auth, json={
                "name": node.name.split(".")[0], "url": node.url,
                "verifier_key": node.verifier_key}).status_code)
        self.size = self.ledger_size()

    def ledger_size(self) -> int:
        """Entries in the ledger now."""
        with transaction(self.sessions) as session:
            return SqlStorage(session, LEDGER_TABLES).size()

    def fill_to(self, target: int) -> None:
        """Append filler entries about other packets up to ``target``, a checkpoint after
        each batch (as the checkpointer would: a checkpoint never adds 10,000 entries,
        which ``ledger.store.presign.check_chain`` misreads at its batch boundary today)."""
        while self.size < target:
            drafts = make_drafts(self.size, min(BATCH, target - self.size))
            with transaction(self.sessions) as session:
                appended = Ledger(SqlStorage(session, LEDGER_TABLES)).append_many(drafts)
                session.execute(insert(LedgerSubject), [
                    {"subject_type": "packet", "subject_id": d.subject["id"],
                     "ledger_index": a.index, "action": d.action}
                    for d, a in zip(drafts, appended, strict=True)])
            self.size += len(drafts)
            sign_once(self.sessions, self.signer, ORIGIN)


def _ok(status: int) -> None:
    if status not in (200, 201, 202, 206):
        raise RuntimeError(f"unexpected HTTP {status}")


def play_history(ex: Exchange) -> str:
    """Nine entries about a new packet (the tenth is the issue); returns its id."""
    client, alice, bob, carol = ex.world.client, ex.alice, ex.bob, ex.carol
    sealed, pid = ex.sent()
    _ok(client.get(f"/v1/packets/{pid}", headers=bob.auth).status_code)
    for stream in range(3):
        _ok(client.get(f"/v1/packets/{pid}/streams/{stream}", headers=bob.auth).status_code)
    opened = opened_by(sealed, alice, bob)
    receipt = make_receipt(opened, bob.id, bob.keys)
    _ok(client.post(f"/v1/packets/{pid}/receipts", headers=bob.auth,
                    json=signed_body(receipt.receipt, receipt.signature)).status_code)
    share = share_content_key(opened, bob.keys, bob.id, carol.id, carol.keys.public)
    _ok(client.post(f"/v1/packets/{pid}/shares", headers=bob.auth,
                    json=signed_body(share.share, share.signature)).status_code)
    _ok(client.get(f"/v1/packets/{pid}", headers=carol.auth).status_code)
    _ok(client.get(f"/v1/packets/{pid}/receipts", headers=alice.auth).status_code)
    return pid


def collected(client: TestClient, ex: Exchange, pid: str,
              poll: float | None) -> tuple[bytes, float, float, float]:
    """Issue and collect; ``poll`` seconds between tries (``None``: ``Retry-After``).

    Returns the bundle, the time to it, and the times of the POST and the sealing GET (ms).
    """
    start = time.perf_counter()
    response = client.post(f"/v1/packets/{pid}/certificates", headers=ex.bob.auth,
                           json={"issued_to": "Juzgado 3", "purpose": "bench"})
    issue_ms = (time.perf_counter() - start) * 1000
    _ok(response.status_code)
    url = f"/v1/certificates/{response.json()['id']}"
    while response.status_code == 202:
        time.sleep(poll if poll is not None else float(response.headers["Retry-After"]))
        tried = time.perf_counter()
        response = client.get(url, headers=ex.bob.auth)
        _ok(response.status_code)
    seal_ms = (time.perf_counter() - tried) * 1000
    return response.content, (time.perf_counter() - start) * 1000, issue_ms, seal_ms


def measure(centre: Centre, ex: Exchange, packets: int, repeat: int) -> Row:
    """Issue and collect a certificate for ``packets`` packets, twice (two ways to poll)."""
    trust = Trust(seal_key=seal_key(centre.client.get("/v1/certificates/key").text))
    row = Row(0, [], [], [], [], 0.0, 0.0, 0, 0)
    data = b""
    for poll in (None, 0.05):
        for _ in range(packets):
            data, total, issue_ms, seal_ms = collected(centre.client, ex, play_history(ex),
                                                       poll)
            (row.valid_ms if poll is None else row.ready_ms).append(total)
            row.issue_ms.append(issue_ms)
            row.seal_ms.append(seal_ms)
            report = check_certificate(data, trust)
            if not report.ok:
                raise RuntimeError(f"certificate does not verify: {report.failures()}")
    samples, cpu_samples = [], []
    for _ in range(repeat):
        start, cpu = time.perf_counter(), time.process_time()
        check_certificate(data, trust)
        samples.append((time.perf_counter() - start) * 1000)
        cpu_samples.append((time.process_time() - cpu) * 1000)
    bundle = parse_bundle(data)
    centre.size = centre.ledger_size()
    row.size, row.bytes, row.events = centre.size, len(data), len(bundle.certificate.events)
    row.verify_ms, row.verify_cpu_ms = statistics.median(samples), statistics.median(cpu_samples)
    return row


def print_table(rows: Sequence[Row]) -> None:
    """The results as a Markdown table."""
    print("| ledger entries | events | to valid p50 / max (ms) | server ready p50 / max (ms) "
          "| issue p50 (ms) | seal p50 (ms) | verify p50 wall / CPU (ms) | bytes |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r.size:,} | {r.events} | {statistics.median(r.valid_ms):.0f} / "
              f"{max(r.valid_ms):.0f} | {statistics.median(r.ready_ms):.0f} / "
              f"{max(r.ready_ms):.0f} | {statistics.median(r.issue_ms):.1f} "
              f"| {statistics.median(r.seal_ms):.1f} | {r.verify_ms:.2f} / "
              f"{r.verify_cpu_ms:.2f} | {r.bytes:,} |")


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,100000")
    parser.add_argument("--packets", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    rows: list[Row] = []
    for size in sizes:  # a fresh centre per size, filled before it starts
        with tempfile.TemporaryDirectory(prefix="cadena-bench-cert-") as tmp, \
                ExitStack() as stack:
            centre = Centre(Path(tmp), args.interval, stack, size - 20 * args.packets)
            stack.callback(centre.engine.dispose)
            rows.append(measure(centre, exchange(centre.world), args.packets, args.repeat))
            print(f"measured at {rows[-1].size:,} entries", file=sys.stderr, flush=True)
    print(f"checkpoint interval {args.interval} s, witness quorum 2 of 2 (witness processes)")
    print_table(rows)


if __name__ == "__main__":
    main()
