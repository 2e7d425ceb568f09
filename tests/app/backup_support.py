"""What the backup and restore tests share: databases, traffic, and sources built once.

Building a source server and backing it up costs several ``cadena-server``
processes; most restore tests only read the archive. So each backend's
source and archives are built once per test session (per xdist worker) by
the ``backed_up`` and ``witnessed`` fixtures of ``tests/app/conftest.py``,
and every test restores into its own fresh place. Nothing a test may change
is shared: the sources are never served again, and the archive that needs
an altered ledger is made from a copy of the source, not the source itself.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import sqlite3
import tarfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

import httpx
import pytest
from sqlalchemy import make_url, text
from sqlalchemy.pool import NullPool

from app.ledger.engine import make_engine
from tests.certificates.witness_processes import WitnessNode, witnesses
from tests.conftest import _pg_admin_url, _pg_exec, database_name, fresh_database_url
from tests.reliability.harness import (
    ORIGIN,
    Cast,
    Person,
    Server,
    ServerConfig,
    enrol_cast,
    expect,
    new_coordinator,
    packet_id_of,
    run_cli,
    seal,
    upload_and_submit,
)

BACKENDS = ["sqlite", "postgresql"]
T = TypeVar("T")


def database(backend: str, request: pytest.FixtureRequest, tmp_path: Path,
             name: str) -> str | None:
    """``None`` (SQLite in the data directory) or a fresh PostgreSQL database URL."""
    if backend == "sqlite":
        return None
    if request.scope == "function":
        request.applymarker(pytest.mark.postgres)
    place = tmp_path / f"pg-{name}"
    place.mkdir()
    return fresh_database_url("postgresql", request, place)


def empty_database(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """A fresh, *empty* database for a restore (PostgreSQL: no tables at all)."""
    url = database(backend, request, tmp_path, "restored")
    if url is not None:
        engine = make_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    return url


def send(http: httpx.Client, sender: Person, recipient: Person, channel: str,
         marker: str) -> str:
    """Seal, upload and submit one small packet; its id."""
    sealed = seal(sender, [recipient], channel, marker, size=3000)
    responses = upload_and_submit(http, sender, sealed)
    expect(responses[-1], 201)
    return packet_id_of(sealed)


def serving(config: ServerConfig, tmp_path: Path, name: str) -> tuple[Server, Cast]:
    """Bootstrap ``config``, start its server and enrol one sender/recipient pair."""
    coordinator, verifier = new_coordinator(config)
    server = Server(config, tmp_path / f"{name}.log")
    server.start()
    return server, enrol_cast(server.url, coordinator, verifier, pairs=1)


def witness_size(directory: Path, origin: str) -> int:
    """The size of the newest checkpoint of ``origin`` the witness in ``directory`` cosigned."""
    with sqlite3.connect(directory / "witness.db") as db:
        row = db.execute("SELECT size FROM latest WHERE origin = ?", (origin,)).fetchone()
    return int(row[0]) if row else 0


def wait(predicate: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """Poll ``predicate`` every 0.1 s until it holds; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def entries_backed_up(backup_output: str) -> int:
    """The ledger size ``cadena-server backup`` reports having archived."""
    return int(backup_output.split("ledger: ", 1)[1].split(" entries", 1)[0])


def tamper_ledger(url: str) -> None:
    """Change the bytes of stored entry 1 (its leaf hash and the tree stay as they were)."""
    engine = make_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            entry = conn.execute(text(
                'SELECT entry FROM ledger_entries WHERE "index" = 1')).scalar_one()
            changed = bytes(entry).replace(b'"outcome":"granted"', b'"outcome":"denied!"', 1)
            assert changed != bytes(entry)
            conn.execute(text('UPDATE ledger_entries SET entry = :e WHERE "index" = 1'),
                         {"e": changed})
    finally:
        engine.dispose()


def cut_database(archive: Path, out: Path) -> Path:
    """``archive`` with its database member cut in half and the manifest forged to match."""
    with tarfile.open(archive) as src:
        members = [(info, src.extractfile(info)) for info in src]
        contents = {info.name: handle.read() if handle is not None else b""
                    for info, handle in members}
    manifest = json.loads(contents["manifest.json"])
    name = next(n for n in contents if n.startswith("database/"))
    contents[name] = contents[name][: len(contents[name]) // 2]
    manifest["members"][name] = {"sha256": hashlib.sha256(contents[name]).hexdigest(),
                                 "size": len(contents[name])}
    contents["manifest.json"] = json.dumps(manifest).encode()
    with tarfile.open(out, "w") as dst:
        for info, _ in members:
            info.size = len(contents[info.name])
            dst.addfile(info, io.BytesIO(contents[info.name]))
    return out


@dataclass(frozen=True)
class BackedUp:
    """A bootstrapped, checkpointed source (never served) and archives of it.

    ``good`` is its backup; ``altered`` the backup of a copy whose stored
    entry 1 was changed (``ledger verify`` fails on it); ``cut`` is ``good``
    with its database member cut in half and the manifest forged to match.
    Tests read these and may back the source up again; they change neither.
    """

    source: ServerConfig
    verifier_key: str
    good: Path
    altered: Path
    cut: Path

    def bad(self, fault: str) -> Path:
        """The archive with ``fault`` ("altered-entry" or "cut-database")."""
        return {"altered-entry": self.altered, "cut-database": self.cut}[fault]


def _copy(source: ServerConfig, where: Path) -> ServerConfig:
    """An independent copy of a stopped server: its data directory and its database."""
    shutil.copytree(source.data_dir, where / "live")
    url = None
    if source.database_url is not None:
        name = database_name("t")
        original = make_url(source.database_url).database
        _pg_exec(f'CREATE DATABASE "{name}" TEMPLATE "{original}"')
        url = make_url(_pg_admin_url()).set(database=name).render_as_string(False)
    return ServerConfig(where / "live", url)


def build_backed_up(backend: str, request: pytest.FixtureRequest, where: Path) -> BackedUp:
    """Bootstrap a source on ``backend``, sign a checkpoint, and make its three archives."""
    source = ServerConfig(where / "live", database(backend, request, where, "live"))
    _, verifier = new_coordinator(source)
    run_cli(source, "ledger", "checkpoint")
    good = where / "good.cadena-backup"
    run_cli(source, "backup", "--out", str(good))
    copy = _copy(source, where / "copy")
    if copy.database_url is not None:
        request.addfinalizer(lambda: _pg_exec(
            f'DROP DATABASE IF EXISTS "{make_url(copy.url()).database}" WITH (FORCE)'))
    tamper_ledger(copy.url())
    altered = where / "altered.cadena-backup"
    run_cli(copy, "backup", "--out", str(altered))
    return BackedUp(source, verifier, good, altered,
                    cut_database(good, where / "cut.cadena-backup"))


@dataclass(frozen=True)
class Witnessed:
    """A source a running witness followed, stopped, with two archives made while it served.

    ``before_witness`` was made before the witness was registered (the
    archived database does not know it); ``old`` after the witness cosigned
    and before three more packets, which the witness also cosigned.
    ``cosigned`` is the witness's size at the end. The witness keeps serving
    until the session ends; restores ask it, and change nothing in it.
    """

    source: ServerConfig
    cast: Cast
    log_key: str
    node: WitnessNode
    before_witness: Path
    before_witness_entries: int
    old: Path
    old_entries: int
    cosigned: int


def build_witnessed(backend: str, request: pytest.FixtureRequest, where: Path,
                    stack: ExitStack) -> Witnessed:
    """Serve a source, back it up before and after registering a witness, then stop it."""
    source = ServerConfig(where / "live", database(backend, request, where, "live"))
    server, cast = serving(source, where, "live")
    sender, recipient = cast.pairs[0]
    try:
        log_key = httpx.get(server.url + "/v1/ledger/key").text.strip()
        node = stack.enter_context(witnesses(where, log_key, 1))[0]
        with httpx.Client(base_url=server.url, timeout=30) as http:
            send(http, sender, recipient, cast.channel, "before")
            before = where / "before-the-witness.cadena-backup"
            before_entries = entries_backed_up(run_cli(source, "backup", "--out", str(before)))
            expect(http.post("/v1/witnesses", headers=cast.coordinator.auth, json={
                "name": "witness1", "url": node.url, "verifier_key": node.verifier_key}), 201)
            send(http, sender, recipient, cast.channel, "early")
            wait(lambda: witness_size(node.directory, ORIGIN) > 0, "a cosignature")
            old = where / "old.cadena-backup"
            old_entries = entries_backed_up(run_cli(source, "backup", "--out", str(old)))
            for i in range(3):
                send(http, sender, recipient, cast.channel, f"late{i}")
            wait(lambda: witness_size(node.directory, ORIGIN) > old_entries + 3,
                 "the witness to cosign the later entries")
    finally:
        server.stop()
    return Witnessed(source, cast, log_key, node, before, before_entries, old, old_entries,
                     witness_size(node.directory, ORIGIN))


@dataclass
class Shared(Generic[T]):
    """One ``T`` per backend, built on first use and kept for the session."""

    build: Callable[[str], T]
    made: dict[str, T] = field(default_factory=dict)

    def __call__(self, backend: str) -> T:
        """The ``T`` of ``backend``, built now if this is its first use."""
        if backend not in self.made:
            self.made[backend] = self.build(backend)
        return self.made[backend]
