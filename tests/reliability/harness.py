"""Real Cadena servers on loopback, and the clients that drive them (no tests here).

Used by the reliability and security tests and by ``bench/soak.py``. A
:class:`Server` is ``cadena-server serve`` in its own process group (so that
SIGKILL takes its uvicorn workers with it), listening on 127.0.0.1 only, its
output appended to a log file. :func:`bootstrap` runs ``cadena-server
bootstrap`` with a fresh coordinator key set, and :class:`Api` speaks to the
service over HTTP with real Ed25519 logins, sealed packets and signed receipts.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.pool import NullPool

from app.ledger.engine import make_engine
from app.models.ledger import LEDGER_TABLES
from bench._server import Directory, Liaison, run_command, server_command, server_env
from bench._server import bootstrap as bench_bootstrap
from crypto import (
    Classification,
    Envelope,
    HandlingCode,
    LiaisonKeys,
    PacketHeader,
    PacketMeta,
    SealedPacket,
    make_receipt,
    open_envelope,
    seal_packet,
)
from ledger import Entry, parse_entry

Person = Liaison
"""A liaison as a client: id, private keys (client side only) and a token."""

REPO = Path(__file__).resolve().parents[2]
ORIGIN = "reliability.cadena/ledger"
UNLIMITED = "1000000"


def b64(data: bytes) -> str:
    """Standard base64 text."""
    return base64.b64encode(data).decode()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServerConfig:
    """Where a server keeps its data and how it runs."""

    data_dir: Path
    database_url: str | None = None
    workers: int = 1
    checkpoint_interval: float = 0.2
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        """The environment of the server and CLI processes (rate limits lifted by default)."""
        extra = {"CADENA_LEDGER_ORIGIN": ORIGIN, "CADENA_LOG_JSON": "true",
                 "CADENA_CHECKPOINT_INTERVAL": str(self.checkpoint_interval),
                 "CADENA_RATE_LOGIN_PER_MINUTE": UNLIMITED,
                 "CADENA_RATE_SUBMIT_PER_MINUTE": UNLIMITED, **self.extra_env}
        env = server_env(self.data_dir, self.database_url, log_level="info", extra=extra)
        env["PYTHONPATH"] = str(REPO)
        return env

    def url(self) -> str:
        """The database URL the server uses."""
        return self.database_url or f"sqlite:///{(self.data_dir / 'cadena.db').resolve()}"


def run_cli(config: ServerConfig, *args: str, timeout: float = 120) -> str:
    """Run ``cadena-server ARGS`` against ``config``; return its output (fails on exit != 0)."""
    done = run_command(config.env(), args, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"cadena-server {' '.join(args)} exited {done.returncode}:\n"
                             f"{done.stdout}\n{done.stderr}")
    return done.stdout


class Server:
    """``cadena-server serve`` as a child process group on 127.0.0.1."""

    def __init__(self, config: ServerConfig, log_path: Path, port: int | None = None) -> None:
        self.config = config
        self.log_path = log_path
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, timeout: float = 60) -> None:
        """Start the server and wait until ``/readyz`` answers 200."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*server_command(), "serve", "--host", "127.0.0.1", "--port", str(self.port),
                 "--workers", str(self.config.workers)],
                env=self.config.env(), cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        self.starts += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited {self.process.returncode}; see "
                                     f"{self.log_path}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.kill()
        raise AssertionError(f"server not ready within {timeout} s; see {self.log_path}")

    def _signal(self, sig: signal.Signals) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        """SIGKILL the whole process group (the server and its workers) and reap it."""
        if self.process is None:
            return
        self._signal(signal.SIGKILL)
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # workers whose parent already died
        except ProcessLookupError:
            pass
        self.process.wait(timeout=30)
        self.process = None

    def stop(self) -> None:
        """Stop gracefully (SIGTERM), or kill after 15 s."""
        if self.process is None:
            return
        self._signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
        self.kill()

    def pids(self) -> list[int]:
        """The server process and its descendants (uvicorn workers)."""
        if self.process is None:
            return []
        found, todo = [], [self.process.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            try:
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                continue
            todo.extend(int(c) for c in children)
        return found

    def rss_bytes(self) -> int:
        """Resident memory of the server and its workers, in bytes."""
        total = 0
        for pid in self.pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            except OSError:
                continue
        return total

    def log_text(self) -> str:
        """Everything the server processes wrote so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def bootstrap(config: ServerConfig, coordinator: Person) -> str:
    """``cadena-server bootstrap`` with the coordinator's public keys; the verifier key."""
    return bench_bootstrap(config.env(), coordinator)


def expect(response: httpx.Response, *statuses: int) -> dict[str, Any]:
    """The JSON body of ``response`` if its status is one of ``statuses``."""
    if response.status_code not in statuses:
        raise AssertionError(f"{response.request.method} {response.request.url} -> "
                             f"{response.status_code}: {response.text[:500]}")
    body: dict[str, Any] = response.json()
    return body


@dataclass
class Cast:
    """A bootstrapped service: the coordinator, an auditor and sender/recipient pairs."""

    coordinator: Person
    auditor: Person
    pairs: list[tuple[Person, Person]]
    channel: str
    verifier_key: str

    def people(self) -> list[Person]:
        """Everyone enrolled."""
        return [self.coordinator, self.auditor, *[p for pair in self.pairs for p in pair]]


def new_coordinator(config: ServerConfig) -> tuple[Person, str]:
    """Bootstrap a fresh database (before the server starts); the coordinator and verifier key."""
    coordinator = Person("coord", LiaisonKeys.generate())
    return coordinator, bootstrap(config, coordinator)


def enrol_cast(base_url: str, coordinator: Person, verifier_key: str, pairs: int,
               channel: str = "ops") -> Cast:
    """Enrol an auditor and ``pairs`` sender/recipient pairs in one channel; log all in."""
    with httpx.Client(base_url=base_url, timeout=15) as http:
        directory = Directory(http, coordinator)
        directory.state("MX")
        auditor = directory.liaison("auditor", "CO", role="auditor")
        people = [(directory.liaison(f"sender{i}", "CO"), directory.liaison(f"recipient{i}", "MX"))
                  for i in range(pairs)]
        directory.channel(channel, [p for pair in people for p in pair])
    return Cast(coordinator, auditor, people, channel, verifier_key)


def secrets_of(people: list[Person], config: ServerConfig, markers: list[str]) -> list[str]:
    """Strings that must never appear in a log: tokens, private keys, plaintext markers."""
    needles = list(markers)
    for person in people:
        secret = person.keys.secret_bytes()
        needles += [b64(secret), secret.hex(), b64(secret[:32]), secret[:32].hex(),
                    b64(secret[32:]), secret[32:].hex()]
        if person.token:
            needles += [person.token, person.token.rsplit(".", 1)[-1]]
    key_file = config.data_dir / "ledger.key"
    if key_file.exists():
        needles.append(key_file.read_text().strip())
    return needles


TOKEN_SHAPE = re.compile(r"cdn1\.[0-9a-f]{24}\.[A-Za-z0-9_-]{20,}")


def assert_no_secrets(text: str, needles: list[str]) -> None:
    """No needle, and nothing shaped like a bearer token, occurs in ``text``."""
    for needle in needles:
        assert needle not in text, "a secret or plaintext marker was logged"
    assert TOKEN_SHAPE.search(text) is None, "a bearer token was logged"


def seal(sender: Person, recipients: list[Person], channel: str, marker: str,
         size: int = 256) -> SealedPacket:
    """A real sealed packet whose plaintext carries ``marker`` (to grep logs for)."""
    meta = PacketMeta(channel, Classification("CONFIDENTIAL"), HandlingCode("H0"), "B2")
    message = f"{marker} meet at the border post at dawn".encode()
    attachment = (marker.encode() + b" exhibit ") * (size // (len(marker) + 9) + 1)
    return seal_packet(sender.keys, sender.id, {r.id: r.keys.public for r in recipients},
                       meta, message, {"evidence.txt": attachment[:size]}, chunk_size=1024)


def packet_id_of(sealed: SealedPacket) -> str:
    """The packet id in the sealed header."""
    return PacketHeader.from_bytes(sealed.envelope.header).packet_id


def sha256_hex(data: bytes) -> str:
    """Lowercase hex SHA-256."""
    return hashlib.sha256(data).hexdigest()


def upload_and_submit(http: httpx.Client, sender: Person,
                      sealed: SealedPacket) -> list[httpx.Response]:
    """PUT every stream, then POST the envelope; every response, in order."""
    responses = []
    for stream in sealed.streams:
        response = http.put(f"/v1/blobs/{sha256_hex(stream)}", content=stream,
                            headers=sender.auth)
        responses.append(response)
        if response.status_code not in (200, 201):
            return responses
    envelope = b64(sealed.envelope.to_bytes())
    responses.append(http.post("/v1/packets", headers=sender.auth, json={"envelope": envelope}))
    return responses


def signed_receipt(http: httpx.Client, sender: Person, recipient: Person, packet: str,
                   retrieved: Mapping[str, Any]) -> tuple[httpx.Response, dict[str, str] | None]:
    """Download stream 0 as ``recipient``, open the envelope, and make a receipt body."""
    response = http.get(f"/v1/packets/{packet}/streams/0", headers=recipient.auth)
    if response.status_code != 200:
        return response, None
    envelope = Envelope(base64.b64decode(retrieved["header"]),
                        base64.b64decode(retrieved["signature"]),
                        {recipient.id: base64.b64decode(retrieved["wrapped_key"])})
    opened = open_envelope(envelope, sender.keys.public, recipient.id, recipient.keys,
                           io.BytesIO(response.content))
    receipt = make_receipt(opened, recipient.id, recipient.keys)
    return response, {"signed": b64(receipt.receipt), "signature": b64(receipt.signature)}


def read_entries(url: str) -> list[Entry]:
    """Every ledger entry in the database at ``url``, parsed, in index order."""
    engine = make_engine(url, poolclass=NullPool)
    table = LEDGER_TABLES.entries
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(table.c.entry).order_by(table.c.index)).scalars().all()
    finally:
        engine.dispose()
    return [parse_entry(bytes(raw)) for raw in rows]


def count_rows(url: str, *tables: str) -> dict[str, int]:
    """Row counts of the named tables."""
    from sqlalchemy import table as sql_table

    engine = make_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return {name: int(conn.execute(select(func.count()).select_from(
                sql_table(name))).scalar_one()) for name in tables}
    finally:
        engine.dispose()
