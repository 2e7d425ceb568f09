"""``cadena-server ledger verify`` and ``ledger checkpoint`` on a real database, and the key file.

Split from ``test_tamper_db.py`` (its ledgers, drafts and log key are reused).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete, update
from sqlalchemy.pool import NullPool
from typer.testing import CliRunner

from app.cli import cli
from app.ledger.engine import make_engine
from app.ledger.key import (
    LedgerKeyError,
    create_signing_key,
    load_note_verifier,
    load_signing_key,
)
from app.ledger.unit_of_work import make_session_factory, transaction
from app.settings import get_settings
from ledger import Ledger
from ledger.sql import SqlStorage
from tests.ledger.test_tamper_db import ORIGIN, SIGNER, T, draft

# -- cadena-server ledger verify / checkpoint ------------------------------------


@pytest.fixture
def server_env(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Settings pointing at the test database and a data dir holding a fresh ledger key."""
    monkeypatch.setenv("CADENA_DATABASE_URL", db_url)
    monkeypatch.setenv("CADENA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CADENA_LEDGER_ORIGIN", ORIGIN)
    get_settings.cache_clear()
    key_path = get_settings().resolved_ledger_key_path()
    create_signing_key(key_path)
    yield key_path
    get_settings.cache_clear()


def cli_append(db_url: str, count: int) -> None:
    """Append ``count`` entries through the ledger, committed."""
    engine = make_engine(db_url, poolclass=NullPool)
    try:
        with transaction(make_session_factory(engine)) as session:
            Ledger(SqlStorage(session, T)).append_many(draft(n) for n in range(count))
    finally:
        engine.dispose()


def test_cli_checkpoint_signs_once_per_growth_and_verify_passes(
    server_env: Path, db_url: str
) -> None:
    runner = CliRunner()
    cli_append(db_url, 5)
    signed = runner.invoke(cli, ["ledger", "checkpoint"])
    assert signed.exit_code == 0, signed.output
    assert signed.output.startswith(f"{ORIGIN}\n5\n")
    again = runner.invoke(cli, ["ledger", "checkpoint"])
    assert "no new entries" in again.output
    verified = runner.invoke(cli, ["ledger", "verify"])
    assert verified.exit_code == 0, verified.output
    assert "entries:     5" in verified.output
    assert "checkpoints: 1" in verified.output


def test_cli_verify_reports_tampered_row_and_exits_nonzero(server_env: Path, db_url: str) -> None:
    runner = CliRunner()
    cli_append(db_url, 6)
    assert runner.invoke(cli, ["ledger", "checkpoint"]).exit_code == 0
    engine = make_engine(db_url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(delete(T.entries).where(T.entries.c.index == 2))
    engine.dispose()
    vkey = load_note_verifier(server_env, ORIGIN)
    result = runner.invoke(cli, ["ledger", "verify", "--key", str(vkey)])
    assert result.exit_code == 1
    assert "FAILED at index 2: missing_entry" in result.output


@pytest.mark.parametrize("tampered", [False, True])
def test_cli_verify_with_jobs_gives_the_sequential_report(
    server_env: Path, db_url: str, monkeypatch: pytest.MonkeyPatch, tampered: bool
) -> None:
    import ledger.verify.verifier

    monkeypatch.setattr(ledger.verify.verifier, "PARALLEL_FROM", 0)  # workers even for 9 entries
    runner = CliRunner()
    cli_append(db_url, 9)
    assert runner.invoke(cli, ["ledger", "checkpoint"]).exit_code == 0
    if tampered:
        engine = make_engine(db_url, poolclass=NullPool)
        with engine.begin() as conn:
            conn.execute(delete(T.nodes).where((T.nodes.c.level == 1) & (T.nodes.c.index == 1)))
        engine.dispose()
    result = runner.invoke(cli, ["ledger", "verify", "--jobs", "2"])
    assert result.exit_code == int(tampered), result.output
    expected = "FAILED at index 2: bad_node" if tampered else "ok: every entry"
    assert expected in result.output


def test_cli_verify_json_names_a_corrupted_head_in_lower_case(
    server_env: Path, db_url: str
) -> None:
    runner = CliRunner()
    cli_append(db_url, 6)
    assert runner.invoke(cli, ["ledger", "checkpoint"]).exit_code == 0
    engine = make_engine(db_url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(update(T.head).values(last_leaf_hash=bytes(32)))
    engine.dispose()
    result = runner.invoke(cli, ["ledger", "verify", "--json"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.output)
    assert (report["ok"], report["fault"], report["first_bad_index"]) == (False, "bad_head", 5)
    assert (report["entries"], report["checkpoints"]) == (6, 1)


def test_cli_verify_json_of_a_clean_ledger(server_env: Path, db_url: str) -> None:
    runner = CliRunner()
    cli_append(db_url, 3)
    assert runner.invoke(cli, ["ledger", "checkpoint"]).exit_code == 0
    result = runner.invoke(cli, ["ledger", "verify", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {
        "ok": True, "entries": 3, "checkpoints": 1, "fault": None, "first_bad_index": None,
        "detail": "3 entries and 1 checkpoints verified"}


def test_cli_verify_with_someone_elses_key_fails_on_the_signature(
    server_env: Path, db_url: str
) -> None:
    runner = CliRunner()
    cli_append(db_url, 3)
    assert runner.invoke(cli, ["ledger", "checkpoint"]).exit_code == 0
    result = runner.invoke(cli, ["ledger", "verify", "--key", SIGNER.verifier_key()])
    assert result.exit_code == 1
    assert "bad_checkpoint_signature" in result.output


def test_cli_refuses_a_missing_or_malformed_key(server_env: Path) -> None:
    runner = CliRunner()
    server_env.unlink()
    assert runner.invoke(cli, ["ledger", "checkpoint"]).exit_code == 2
    assert runner.invoke(cli, ["ledger", "verify"]).exit_code == 2
    assert runner.invoke(cli, ["ledger", "verify", "--key", "not-a-key"]).exit_code == 2


def test_ledger_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ledger.key"
    create_signing_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    path.chmod(0o644)
    with pytest.raises(LedgerKeyError, match="chmod 600"):
        load_signing_key(path)


def test_ledger_key_file_may_hold_the_raw_seed(tmp_path: Path) -> None:
    path = tmp_path / "ledger.key"
    path.write_bytes(bytes([1]) * 32)
    path.chmod(0o600)
    assert bytes(load_signing_key(path)) == bytes([1]) * 32
    with pytest.raises(LedgerKeyError, match="already exists"):
        create_signing_key(path)
    path.write_bytes(b"c2hvcnQ=\n")
    with pytest.raises(LedgerKeyError, match="32 bytes"):
        load_signing_key(path)
