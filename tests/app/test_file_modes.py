"""Everything the server writes is its user's alone: files 0600, directories 0700.

The SQLite database and its ``-wal``/``-shm``, blob files and their
directories, upload temporaries and the ledger and seal keys, under a data
directory that is itself 0700. ``cadena-server`` creates a missing data
directory as 0700 and refuses one open to other users (exit status 2, with
the ``chmod`` to run). Real files, real commands, modes read with ``os.stat``.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from app.blobs import BlobStore
from app.cli import cli
from app.ledger.engine import make_engine
from app.settings import get_settings
from bench._server import (
    Directory,
    Liaison,
    b64,
    bootstrap,
    run_command,
    serve,
    server_env,
)
from client.local_server import bootstrap as local_bootstrap
from client.local_server import local_server
from crypto import LiaisonKeys

HARNESS_FILES = {"server.log", "coordinator.pub.json"}
"""Written into the data directory by bench/_server.py (the harness), not by the server."""


def mode(path: Path) -> int:
    """The permission bits of ``path``."""
    return stat.S_IMODE(path.lstat().st_mode)


def modes_under(root: Path) -> dict[str, int]:
    """The permission bits of ``root`` and of everything under it, by relative path."""
    found = {".": mode(root)}
    for path in root.rglob("*"):
        if path.name not in HARNESS_FILES:
            found[str(path.relative_to(root))] = mode(path)
    return found


def assert_private(root: Path) -> None:
    """Every directory under ``root`` (itself included) is 0700 and every file 0600."""
    for name, bits in modes_under(root).items():
        wanted = 0o700 if (root / name).is_dir() else 0o600
        assert bits == wanted, f"{name} is {bits:04o}, not {wanted:04o}"


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """A permissive umask (022) for the test; the process's own is restored afterwards."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.fixture
def data_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
             loose_umask: None) -> Iterator[Path]:
    """In-process ``cadena-server`` commands on ``<tmp>/srv/data`` (SQLite)."""
    data = tmp_path / "srv" / "data"
    monkeypatch.setenv("CADENA_DATA_DIR", str(data))
    monkeypatch.delenv("CADENA_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    yield data
    get_settings.cache_clear()


@pytest.mark.parametrize("bits", [0o755, 0o750, 0o705, 0o711, 0o777], ids=oct)
@pytest.mark.parametrize("command", [["migrate"], ["ledger", "verify"],
                                     ["blobs", "prune", "--dry-run"]])
def test_a_data_directory_open_to_others_is_refused(data_env: Path, command: list[str],
                                                    bits: int) -> None:
    data_env.mkdir(parents=True)
    data_env.chmod(bits)
    done = CliRunner().invoke(cli, command)
    assert done.exit_code == 2, done.output
    assert f"chmod 700 {data_env}" in done.output
    assert mode(data_env) == bits
    assert list(data_env.iterdir()) == []


@pytest.mark.timeout(90)
def test_serve_refuses_a_data_directory_open_to_others(tmp_path: Path) -> None:
    # A real process: serve hands its process over to uvicorn once it starts.
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    data.chmod(0o755)
    done = run_command(server_env(data), ["serve", "--port", "9"], timeout=60)
    assert done.returncode == 2, done.stderr
    assert f"chmod 700 {data}" in done.stderr
    assert list(data.iterdir()) == []


def test_a_missing_data_directory_is_created_private(data_env: Path) -> None:
    done = CliRunner().invoke(cli, ["migrate"])
    assert done.exit_code == 0, done.output
    assert (data_env / "cadena.db").exists()
    assert_private(data_env)


def test_bootstrap_writes_private_files(data_env: Path) -> None:
    public = LiaisonKeys.generate().public
    done = CliRunner().invoke(cli, [
        "bootstrap", "--origin", "test.cadena/ledger", "--state", "CO", "--state-name",
        "Colombia", "--joining-note", "n/1",
        "--liaison", "coord", "--name", "First", "--signing-public", b64(public.signing),
        "--encryption-public", b64(public.encryption)])
    assert done.exit_code == 0, done.output
    assert {"cadena.db", "ledger.key"} <= {p.name for p in data_env.iterdir()}
    assert_private(data_env)


def test_an_existing_database_file_open_to_others_is_made_private(tmp_path: Path,
                                                                   loose_umask: None) -> None:
    path = tmp_path / "old.db"
    path.touch(mode=0o644)
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").touch(mode=0o644)
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    finally:
        engine.dispose()
    assert mode(path) == 0o600
    for suffix in ("-wal", "-shm"):
        extra = Path(f"{path}{suffix}")
        assert not extra.exists() or mode(extra) == 0o600


def test_a_new_database_file_is_private_under_any_umask(tmp_path: Path,
                                                        loose_umask: None) -> None:
    path = tmp_path / "new.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
            wal = Path(f"{path}-wal")
            assert wal.exists()
            assert mode(wal) == 0o600
    finally:
        engine.dispose()
    assert mode(path) == 0o600


def test_blob_directories_and_files_are_private_under_any_umask(tmp_path: Path,
                                                               loose_umask: None) -> None:
    store = BlobStore(tmp_path / "blobs")
    data = b"ciphertext"
    digest = hashlib.sha256(data).hexdigest()
    writer = store.writer(digest, 1024)
    writer.write(data)
    assert_private(tmp_path / "blobs")  # the upload temporary among them
    assert any(p.name.startswith(".upload-") for p in (tmp_path / "blobs").rglob("*"))
    writer.commit()
    assert_private(tmp_path / "blobs")


@pytest.mark.timeout(120)
def test_a_real_server_writes_only_private_files(tmp_path: Path, loose_umask: None) -> None:
    data = tmp_path / "data"
    env = server_env(data)
    coordinator = Liaison("coord", LiaisonKeys.generate())
    bootstrap(env, coordinator)
    blob = b"sealed bytes"
    with serve(env) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        alice = Directory(http, coordinator).liaison("alice", "CO")
        stored = http.put(f"/v1/blobs/{hashlib.sha256(blob).hexdigest()}", content=blob,
                          headers=alice.auth)
        assert stored.status_code == 201, stored.text
        issued = http.get("/v1/certificates/key")
        assert issued.status_code == 200, issued.text
        assert_private(data)
    assert run_command(env, ["ledger", "verify"]).returncode == 0
    assert (data / "certificate-seal.key").exists()
    assert any((data / "blobs").rglob("*"))
    assert_private(data)


@pytest.mark.timeout(120)
def test_the_clients_local_server_keeps_its_data_directory_private(tmp_path: Path,
                                                                   loose_umask: None) -> None:
    keys = LiaisonKeys.generate().public
    public = tmp_path / "coord.json"
    public.write_text(json.dumps({"signing_public": b64(keys.signing),
                                  "encryption_public": b64(keys.encryption)}))
    data = tmp_path / "server"
    local_bootstrap(data, public)
    with local_server(data) as server:
        assert httpx.get(f"{server.url}/readyz", timeout=30).status_code == 200
    assert mode(data / "server.log") == 0o600
    assert_private(data)
