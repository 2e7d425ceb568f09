"""A restore is all or nothing: a fault found late leaves the place it was restoring into as it was.

Real faults, no mocks: an archive of a ledger whose stored entry was altered
(the manifest is honest; ``ledger verify`` finds it after the database is
loaded), and an archive whose database member was cut short with its
manifest line forged to match (the manifest is not signed: anyone can write
one), so SQLite or ``pg_restore`` fails midway. Into an empty data directory
and database: they stay empty. Over a restored server with ``--force``: its
files are byte for byte the same, and its ledger still verifies.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.pool import NullPool

from app.ledger.engine import make_engine
from bench._server import run_command
from tests.app.backup_support import BACKENDS, BackedUp, Shared, empty_database
from tests.reliability.harness import ServerConfig, run_cli

FAULTS = ["altered-entry", "cut-database"]


def _files(directory: Path) -> dict[str, str]:
    """Every file under ``directory`` (relative name → SHA-256), hidden ones included."""
    if not directory.exists():
        return {}
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def _tables(url: str) -> int:
    engine = make_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            if url.startswith("sqlite"):
                query = "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
            else:
                query = "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
            return int(conn.execute(text(query)).scalar_one())
    finally:
        engine.dispose()


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_failed_restore_leaves_an_empty_place_empty(
        backend: str, fault: str, backed_up: Shared[BackedUp], request: pytest.FixtureRequest,
        tmp_path: Path) -> None:
    bad = backed_up(backend).bad(fault)
    target = ServerConfig(tmp_path / "restored", empty_database(backend, request, tmp_path))
    done = run_command(target.env(), ["restore", str(bad)])
    assert done.returncode == 1, done.stdout + done.stderr
    assert "nothing was changed" in done.stderr
    assert _files(target.data_dir) == {}
    if target.database_url is not None:
        assert _tables(target.url()) == 0
    assert [p.name for p in target.data_dir.parent.iterdir()
            if p.name.startswith(".restored")] == []  # no staging left behind


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_failed_forced_restore_keeps_the_previous_server_intact(
        backend: str, fault: str, backed_up: Shared[BackedUp], request: pytest.FixtureRequest,
        tmp_path: Path) -> None:
    shared = backed_up(backend)
    good, bad = shared.good, shared.bad(fault)
    target = ServerConfig(tmp_path / "restored", empty_database(backend, request, tmp_path))
    first = run_command(target.env(), ["restore", str(good)])
    assert first.returncode == 0, first.stdout + first.stderr
    before = json.loads(run_cli(target, "ledger", "verify", "--json"))
    files = _files(target.data_dir)
    assert "ledger.key" in files

    done = run_command(target.env(), ["restore", "--force", str(bad)])
    assert done.returncode == 1, done.stdout + done.stderr
    assert "nothing was changed" in done.stderr
    assert _files(target.data_dir) == files
    after = json.loads(run_cli(target, "ledger", "verify", "--json"))
    assert after == before
    assert after["ok"]


def _replaced_schemas(url: str) -> list[str]:
    engine = make_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'cadena_replaced_%'"))
                .scalars())
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_forced_restore_keeps_the_replaced_directory_beside(
        backend: str, backed_up: Shared[BackedUp], request: pytest.FixtureRequest,
        tmp_path: Path) -> None:
    """Success with --force: the new server in place, the old directory kept, no schema left."""
    good = backed_up(backend).good
    target = ServerConfig(tmp_path / "restored", empty_database(backend, request, tmp_path))
    assert run_command(target.env(), ["restore", str(good)]).returncode == 0
    (target.data_dir / "tls.key").write_bytes(b"not in any archive")
    previous = _files(target.data_dir)

    done = run_command(target.env(), ["restore", "--force", str(good)])
    assert done.returncode == 0, done.stdout + done.stderr
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("restored.replaced-")]
    assert len(kept) == 1
    assert f"kept at {kept[0]}" in done.stdout
    assert _files(kept[0]) == previous
    assert "tls.key" not in _files(target.data_dir)
    assert json.loads(run_cli(target, "ledger", "verify", "--json"))["ok"]
    if target.database_url is not None:
        assert _replaced_schemas(target.url()) == []


@pytest.mark.postgres
def test_an_interrupted_postgres_restore_stops_serve_and_is_undone_by_the_next(
        backed_up: Shared[BackedUp], request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Killed between the load and the exchange: serve refuses; restore --force puts it back.

    The interrupted state is made by the restore's own steps (the marker, then
    the load in one transaction), stopped where a kill would stop them.
    """
    from app.staging import MARKER, load_postgres, replaced_name, write_marker

    shared = backed_up("postgresql")
    good = shared.good
    target = ServerConfig(tmp_path / "restored", empty_database("postgresql", request, tmp_path))
    assert run_command(target.env(), ["restore", str(good)]).returncode == 0
    before = json.loads(run_cli(target, "ledger", "verify", "--json"))

    # The half-done restore loads a different database: the altered ledger's.
    with tarfile.open(shared.altered) as tar:
        tar.extract("database/cadena.pgdump", tmp_path / "unpacked", filter="data")
    replaced = replaced_name()
    write_marker(target.data_dir, replaced)
    load_postgres(target.url(), tmp_path / "unpacked" / "database" / "cadena.pgdump", tmp_path,
                  replaced)

    serve = run_command(target.env(), ["serve", "--port", "1"])
    assert serve.returncode == 2
    assert "was interrupted" in serve.stderr
    again = run_command(target.env(), ["restore", str(good)])
    assert again.returncode == 1
    assert "--force" in again.stderr

    done = run_command(target.env(), ["restore", "--force", str(good)])
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (target.data_dir / MARKER).exists()
    assert _replaced_schemas(target.url()) == []
    assert json.loads(run_cli(target, "ledger", "verify", "--json")) == before


def test_a_full_disk_while_staging_changes_nothing(tmp_path: Path,
                                                   backed_up: Shared[BackedUp]) -> None:
    """Writes fail midway (a file-size limit, as a full disk would): the old server stays."""
    import resource
    import subprocess

    from bench._server import server_command

    good = backed_up("sqlite").good
    target = ServerConfig(tmp_path / "restored")
    assert run_command(target.env(), ["restore", str(good)]).returncode == 0
    files = _files(target.data_dir)
    limit = good.stat().st_size // 4  # the archive's database member is larger than this

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    done = subprocess.run([*server_command(), "restore", "--force", str(good)],  # noqa: S603
                          env=target.env(), capture_output=True, text=True, timeout=120,
                          check=False, preexec_fn=small_files)  # noqa: PLW1509
    assert done.returncode == 1, done.stdout + done.stderr
    assert "could not be staged" in done.stderr
    assert "nothing was changed" in done.stderr
    assert _files(target.data_dir) == files
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".restored")] == []
