"""``cadena-server bootstrap`` fixes the ledger's origin for ever: it must be chosen, and said."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from app.cli import cli
from app.settings import get_settings
from crypto import LiaisonKeys

ORIGIN = "fiscalia.example/cadena-ledger"


@pytest.fixture
def fresh_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """A missing SQLite data directory, and no ``CADENA_LEDGER_ORIGIN`` in the environment."""
    data = tmp_path / "data"
    monkeypatch.setenv("CADENA_DATA_DIR", str(data))
    for name in ("CADENA_DATABASE_URL", "CADENA_LEDGER_ORIGIN", "CADENA_LEDGER_KEY_PATH"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield data
    get_settings.cache_clear()


def _bootstrap(*extra: str, env: dict[str, str] | None = None) -> Result:
    public = LiaisonKeys.generate().public
    return CliRunner().invoke(cli, [
        "bootstrap", "--state", "CO", "--state-name", "Colombia", "--joining-note", "n/1",
        "--liaison", "coord", "--name", "First",
        "--signing-public", base64.b64encode(public.signing).decode(),
        "--encryption-public", base64.b64encode(public.encryption).decode(), *extra], env=env)


def test_bootstrap_without_an_origin_is_a_usage_error_that_changes_nothing(
        fresh_data_dir: Path) -> None:
    done = _bootstrap()
    assert done.exit_code == 2, done.output
    assert "--origin" in done.output
    assert "CADENA_LEDGER_ORIGIN" in done.output
    assert "permanent" in done.output
    assert not get_settings().resolved_ledger_key_path().exists()
    assert not (fresh_data_dir / "cadena.db").exists()


def test_bootstrap_fixes_the_origin_given_and_says_it_is_permanent(
        fresh_data_dir: Path) -> None:
    done = _bootstrap("--origin", ORIGIN)
    assert done.exit_code == 0, done.output
    assert f"ledger origin: {ORIGIN}" in done.output
    assert "permanent" in done.output
    assert f"CADENA_LEDGER_ORIGIN={ORIGIN}" in done.output  # what serve must be given
    assert done.output.strip().splitlines()[-1].startswith(f"{ORIGIN}+")


def test_bootstrap_takes_the_origin_from_the_environment(fresh_data_dir: Path) -> None:
    done = _bootstrap(env={"CADENA_LEDGER_ORIGIN": ORIGIN})
    assert done.exit_code == 0, done.output
    assert done.output.strip().splitlines()[-1].startswith(f"{ORIGIN}+")


def test_an_origin_that_differs_from_the_servers_setting_is_refused(
        fresh_data_dir: Path) -> None:
    """The server signs with CADENA_LEDGER_ORIGIN: a different --origin would never verify."""
    done = _bootstrap("--origin", ORIGIN, env={"CADENA_LEDGER_ORIGIN": "other.example/ledger"})
    assert done.exit_code == 2, done.output
    assert "other.example/ledger" in done.output
    assert not get_settings().resolved_ledger_key_path().exists()


@pytest.mark.parametrize("origin", ["", "two\nlines", "has space"])
def test_an_origin_that_cannot_be_a_checkpoint_origin_line_is_refused(
        fresh_data_dir: Path, origin: str) -> None:
    done = _bootstrap("--origin", origin)
    assert done.exit_code == 2, done.output
    assert not get_settings().resolved_ledger_key_path().exists()
