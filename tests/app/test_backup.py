"""Backup and restore drills against real servers, real witnesses, SQLite and PostgreSQL.

``cadena-server backup`` runs while the server serves and liaisons keep
sending; the archive is restored into a fresh data directory and database,
``ledger verify`` passes and every packet sent before the backup fetches and
opens. An old backup (the witness cosigned entries added after it) restored:
restore and serve refuse, naming the number of entries lost. A tampered or
truncated archive is refused before anything is restored; an encrypted one
does not open without the operator's identity.
"""

from __future__ import annotations

import base64
import io
import json
import stat
import tarfile
import threading
import time
from hashlib import sha256
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.pool import NullPool

from app.ledger.engine import make_engine
from bench._server import login, run_command
from crypto import LiaisonKeys, open_envelope, save_keys
from crypto.keyfile import MEMLIMIT_MIN, OPSLIMIT_MIN
from tests.app.backup_support import (
    BACKENDS,
    BackedUp,
    Shared,
    Witnessed,
    database,
    empty_database,
    entries_backed_up,
    send,
    serving,
    witness_size,
)
from tests.reliability.harness import ORIGIN, Cast, Person, Server, ServerConfig, expect, run_cli


def _opens(http: httpx.Client, sender: Person, recipient: Person, packet: str) -> None:
    """The recipient fetches the packet and opens it: signature, key and stream verify."""
    body = expect(http.get(f"/v1/packets/{packet}", headers=recipient.auth), 200)
    stream = http.get(f"/v1/packets/{packet}/streams/0", headers=recipient.auth)
    assert stream.status_code == 200, stream.text
    from crypto import Envelope

    envelope = Envelope(base64.b64decode(body["header"]), base64.b64decode(body["signature"]),
                        {recipient.id: base64.b64decode(body["wrapped_key"])})
    open_envelope(envelope, sender.keys.public, recipient.id, recipient.keys,
                  io.BytesIO(stream.content))


class _Traffic(threading.Thread):
    """Packets sent one after another until stopped (requests in flight during a backup)."""

    def __init__(self, url: str, cast: Cast) -> None:
        super().__init__(daemon=True)
        self.url, self.cast = url, cast
        self.halt = threading.Event()
        self.sent: list[str] = []

    def run(self) -> None:
        sender, recipient = self.cast.pairs[0]
        with httpx.Client(base_url=self.url, timeout=30) as http:
            n = 0
            while not self.halt.is_set():
                self.sent.append(send(http, sender, recipient, self.cast.channel, f"busy{n}"))
                n += 1


@pytest.mark.parametrize(("backend", "blobs"), [
    *((backend, "directory") for backend in BACKENDS), ("postgresql", "database")])
def test_restore_drill_whileserving(backend: str, blobs: str, request: pytest.FixtureRequest,
                                     tmp_path: Path) -> None:
    """Back up under load, restore elsewhere: the ledger verifies and every packet opens.

    With the blobs in the database (``CADENA_BLOB_STORE=database``) the database
    snapshot carries them: no blob file is archived, and the restored server serves them.
    """
    store = {"CADENA_BLOB_STORE": blobs}
    source = ServerConfig(tmp_path / "live", database(backend, request, tmp_path, "live"),
                          extra_env=store)
    server, cast = serving(source, tmp_path, "live")
    sender, recipient = cast.pairs[0]
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            before = [send(http, sender, recipient, cast.channel, f"m{i}") for i in range(4)]
        traffic = _Traffic(server.url, cast)
        traffic.start()
        while len(traffic.sent) < 2:
            time.sleep(0.05)
        archive = tmp_path / "drill.cadena-backup"
        out = run_cli(source, "backup", "--out", str(archive))
        traffic.halt.set()
        traffic.join(timeout=60)
    finally:
        server.stop()
    assert "NOT encrypted" in out
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    entries = entries_backed_up(out)

    with tarfile.open(archive) as tar:
        archived_blobs = [name for name in tar.getnames() if name.startswith("blobs/")]
    assert bool(archived_blobs) == (blobs == "directory"), archived_blobs

    target = ServerConfig(tmp_path / "restored", empty_database(backend, request, tmp_path),
                          extra_env=store)
    done = run_command(target.env(), ["restore", str(archive)])
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"ledger of {entries} entries" in done.stdout
    assert "ok: every entry, node and checkpoint verifies" in done.stdout
    if backend == "postgresql":  # a loaded dump leaves the planner no statistics
        assert target.database_url is not None
        assert {"packets", "packet_keys"} <= _analyzed(target.database_url)
    verified = run_command(target.env(), ["ledger", "verify", "--json"])
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)["entries"] >= entries
    assert stat.S_IMODE((target.data_dir / "ledger.key").stat().st_mode) == 0o600
    assert (target.data_dir / "ledger.key").read_bytes() == (
        source.data_dir / "ledger.key").read_bytes()

    restored = Server(target, tmp_path / "restored.log")
    restored.start()
    try:
        with httpx.Client(base_url=restored.url, timeout=30) as http:
            login(http, recipient)
            for packet in before + traffic.sent[:2]:
                _opens(http, sender, recipient, packet)
    finally:
        restored.stop()
    # Restoring again over what is now there needs --force.
    again = run_command(target.env(), ["restore", str(archive)])
    assert again.returncode == 1
    assert "not empty" in again.stderr


def _analyzed(url: str) -> set[str]:
    """The tables of ``url`` that ANALYZE has given statistics."""
    engine = make_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return set(conn.execute(text(
                "SELECT relname FROM pg_stat_user_tables WHERE last_analyze IS NOT NULL "
                "OR last_autoanalyze IS NOT NULL")).scalars())
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
def test_old_backup_behind_the_witness_refuses_to_serve(
        backend: str, witnessed: Shared[Witnessed], request: pytest.FixtureRequest,
        tmp_path: Path) -> None:
    """Entries cosigned after the backup: restore and serve refuse, naming how many were lost."""
    shared = witnessed(backend)
    node, archive, cosigned = shared.node, shared.old, shared.cosigned
    lost = cosigned - shared.old_entries
    assert lost > 3

    target = ServerConfig(tmp_path / "restored", empty_database(backend, request, tmp_path))
    done = run_command(target.env(), ["restore", str(archive)])
    assert done.returncode == 3, done.stdout + done.stderr
    assert f"{lost} entries were lost since the backup" in done.stderr
    assert f"witness1 ({cosigned})" in done.stderr
    assert "recover the lost entries" in done.stderr

    refused = Server(target, tmp_path / "refused.log")
    with pytest.raises(AssertionError, match="server exited 3"):
        refused.start(timeout=60)
    assert f"{lost} entries were lost since the backup" in refused.log_text()
    # With --force, a behind archive does not replace what is there (ADR 0030).
    placed = {p.name: p.read_bytes() for p in target.data_dir.iterdir() if p.is_file()}
    forced = run_command(target.env(), ["restore", "--force", str(archive)])
    assert forced.returncode == 3, forced.stdout + forced.stderr
    assert "nothing was changed" in forced.stderr
    assert {p.name: p.read_bytes() for p in target.data_dir.iterdir()
            if p.is_file()} == placed
    # The witness was not moved: it still holds what it cosigned.
    assert witness_size(node.directory, ORIGIN) == cosigned


def _operator(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    keys = LiaisonKeys.generate()
    identity = tmp_path / "operator.key"
    identity.write_bytes(save_keys(keys, "operator passphrase", opslimit=OPSLIMIT_MIN,
                                   memlimit=MEMLIMIT_MIN))
    public = tmp_path / "operator.pub.json"
    public.write_text(json.dumps({
        "signing_public": base64.b64encode(keys.public.signing).decode(),
        "encryption_public": base64.b64encode(keys.public.encryption).decode()}))
    return public, identity, {"CADENA_PASSPHRASE": "operator passphrase"}


def test_encrypted_archive_needs_the_operator_identity(tmp_path: Path,
                                                      backed_up: Shared[BackedUp]) -> None:
    """Encrypted to the operator: no plaintext in the file, and it opens with that key only."""
    source = backed_up("sqlite").source
    public, identity, env = _operator(tmp_path)
    archive = tmp_path / "sealed.cadena-backup"
    out = run_cli(source, "backup", "--out", str(archive), "--recipient", str(public))
    assert "encrypted to operator key" in out
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    data = archive.read_bytes()
    assert b"manifest.json" not in data
    assert b"SQLite format" not in data
    assert (source.data_dir / "ledger.key").read_bytes().strip() not in data

    target = ServerConfig(tmp_path / "restored", extra_env=env)
    without = run_command(target.env(), ["restore", str(archive)])
    assert without.returncode == 1
    assert "--identity" in without.stderr
    assert not (target.data_dir / "ledger.key").exists()

    (tmp_path / "other").mkdir()
    _, stranger, _ = _operator(tmp_path / "other")
    wrong = run_command(target.env(), ["restore", str(archive), "--identity", str(stranger)])
    assert wrong.returncode == 1
    assert "does not open" in wrong.stderr
    assert not (target.data_dir / "ledger.key").exists()

    done = run_command(target.env(), ["restore", str(archive), "--identity", str(identity)])
    assert done.returncode == 0, done.stdout + done.stderr
    assert (target.data_dir / "ledger.key").read_bytes() == (
        source.data_dir / "ledger.key").read_bytes()

    # A flipped byte in the ciphertext: authentication fails, nothing restored.
    flipped = bytearray(data)
    flipped[-100] ^= 1
    (tmp_path / "flipped").write_bytes(bytes(flipped))
    other = ServerConfig(tmp_path / "restored2", extra_env=env)
    bad = run_command(other.env(), ["restore", str(tmp_path / "flipped"),
                                    "--identity", str(identity)])
    assert bad.returncode == 1
    assert not (other.data_dir / "ledger.key").exists()


def _tampered(archive: Path, tmp_path: Path, member: str) -> Path:
    """A copy of ``archive`` with one byte of ``member``'s content changed (tar kept valid)."""

    copy = tmp_path / f"tampered-{member.replace('/', '_')}"
    with tarfile.open(archive) as src, tarfile.open(copy, "w") as dst:
        for info in src:
            handle = src.extractfile(info)
            content = handle.read() if handle is not None else b""
            if info.name == member:
                content = content[:-1] + bytes([content[-1] ^ 1])
            dst.addfile(info, io.BytesIO(content))
    return copy


def test_tampered_or_truncated_archive_is_refused(tmp_path: Path,
                                                  backed_up: Shared[BackedUp]) -> None:
    """A changed member, a truncated file, an extra member: refused, nothing restored."""
    archive = backed_up("sqlite").good
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert names[0] == "manifest.json"
    assert "keys/ledger.key" in names
    assert "database/cadena.db" in names

    cases = {"keys/ledger.key": "does not match the manifest",
             "database/cadena.db": "does not match the manifest"}
    for n, (member, message) in enumerate(cases.items()):
        target = ServerConfig(tmp_path / f"t{n}")
        done = run_command(target.env(), ["restore", str(_tampered(archive, tmp_path, member))])
        assert done.returncode == 1, done.stdout
        assert message in done.stderr
        assert not (target.data_dir / "cadena.db").exists()
        assert not (target.data_dir / "ledger.key").exists()

    truncated = tmp_path / "truncated"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    target = ServerConfig(tmp_path / "t-trunc")
    done = run_command(target.env(), ["restore", str(truncated)])
    assert done.returncode == 1
    assert not (target.data_dir / "cadena.db").exists()

    extra = tmp_path / "extra"
    extra.write_bytes(archive.read_bytes())
    with tarfile.open(extra, "a") as tar:
        info = tarfile.TarInfo("keys/attacker.key")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    target = ServerConfig(tmp_path / "t-extra")
    done = run_command(target.env(), ["restore", str(extra)])
    assert done.returncode == 1
    assert "does not name" in done.stderr
    assert not (target.data_dir / "attacker.key").exists()

    # A forged manifest that names its own traversal: the name alone is refused.
    forged = tmp_path / "forged"
    with tarfile.open(forged, "w") as tar:
        evil = b"owned"
        manifest = {"format": "cadena-backup/1", "database": "sqlite",
                    "ledger": {"size": 0, "root": "", "checkpoint_size": 0},
                    "members": {"keys/../../escape": {"sha256": sha256(evil).hexdigest(),
                                                      "size": len(evil)}}}
        for name, content in (("manifest.json", json.dumps(manifest).encode()),
                              ("keys/../../escape", evil)):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    target = ServerConfig(tmp_path / "deep" / "t-forged")
    done = run_command(target.env(), ["restore", str(forged)])
    assert done.returncode == 1
    assert "not a file restore may write" in done.stderr
    assert not (tmp_path / "deep" / "escape").exists()
    assert not (tmp_path / "escape").exists()


def test_an_unreachable_witness_is_reported_not_trusted(tmp_path: Path,
                                                        backed_up: Shared[BackedUp]) -> None:
    """A witness that does not answer proves nothing: said so, and the restore stands."""
    from tests.reliability.harness import free_port

    shared = backed_up("sqlite")
    archive, verifier = shared.good, shared.verifier_key
    nobody = f"http://127.0.0.1:{free_port()}"
    target = ServerConfig(tmp_path / "restored")
    done = run_command(target.env(), ["restore", str(archive), "--witness", nobody,
                                      "--ledger-key", verifier])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "the restored ledger key is the pinned one" in done.stdout
    assert f"witness {nobody} at {nobody}: no answer" in done.stderr
    assert "no witness answered" in done.stderr


def test_an_archive_of_another_ledger_is_refused_under_the_pinned_key(
        tmp_path: Path, backed_up: Shared[BackedUp]) -> None:
    """An archive made (or forged) with another ledger key: not the ledger auditors pin."""
    from nacl.signing import SigningKey

    from ledger import NoteSigner

    archive = backed_up("sqlite").good
    pinned = NoteSigner(ORIGIN, SigningKey.generate()).verifier_key()
    target = ServerConfig(tmp_path / "restored")
    done = run_command(target.env(), ["restore", str(archive), "--ledger-key", pinned])
    assert done.returncode == 1
    assert "not the pinned" in done.stderr
