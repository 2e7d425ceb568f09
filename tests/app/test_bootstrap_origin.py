"""``cadena-server bootstrap`` fixes the ledger's origin for ever: it must be chosen, and said."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner, Result

from app.cli import cli
from app.settings import get_settings
from bench._server import run_command, serve, server_env
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
    assert "serve and every cadena-server command read it there" in done.output
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


def test_bootstrap_records_the_origin_privately_and_settings_read_it(
        fresh_data_dir: Path) -> None:
    assert _bootstrap("--origin", ORIGIN).exit_code == 0
    recorded = get_settings().resolved_ledger_origin_path()
    assert recorded.read_text() == ORIGIN + "\n"
    assert recorded.stat().st_mode & 0o777 == 0o600
    get_settings.cache_clear()
    assert get_settings().ledger_origin == ORIGIN  # no CADENA_LEDGER_ORIGIN in the environment
    assert get_settings().origin_conflict() is None


def test_a_second_bootstrap_is_refused_and_keeps_the_first_origin(fresh_data_dir: Path) -> None:
    assert _bootstrap("--origin", ORIGIN).exit_code == 0
    get_settings.cache_clear()
    again = _bootstrap("--origin", "other.example/ledger")
    assert again.exit_code != 0
    assert get_settings().resolved_ledger_origin_path().read_text() == ORIGIN + "\n"


# -- serve reads the recorded origin ---------------------------------------------------


def _env_without_origin(data: Path) -> dict[str, str]:
    env = server_env(data)
    del env["CADENA_LEDGER_ORIGIN"]
    return env


def test_serve_signs_with_the_origin_recorded_at_bootstrap(fresh_data_dir: Path) -> None:
    assert _bootstrap("--origin", ORIGIN).exit_code == 0
    with serve(_env_without_origin(fresh_data_dir)) as server, \
            httpx.Client(base_url=server.url) as http:
        deadline = time.monotonic() + 30
        while (answer := http.get("/v1/ledger/checkpoint")).status_code != 200:
            assert time.monotonic() < deadline, answer.text  # a hang, not a speed target
            time.sleep(0.1)
        assert answer.text.splitlines()[0] == ORIGIN
        assert f"ledger origin: {ORIGIN}" in server.log_tail()


def test_serve_refuses_an_origin_other_than_bootstraps(fresh_data_dir: Path) -> None:
    assert _bootstrap("--origin", ORIGIN).exit_code == 0
    env = server_env(fresh_data_dir, extra={"CADENA_LEDGER_ORIGIN": "cadena.example/ledger"})
    done = run_command(env, ["serve", "--port", "1"], timeout=60)
    assert done.returncode == 2
    assert "differs from the origin fixed at bootstrap" in done.stderr
    assert ORIGIN in done.stderr
    assert "serving on" not in done.stderr


def test_serve_on_a_key_without_a_recorded_origin_asks_for_it(fresh_data_dir: Path) -> None:
    """A data directory bootstrapped before the origin was recorded: never a default."""
    assert _bootstrap("--origin", ORIGIN).exit_code == 0
    get_settings().resolved_ledger_origin_path().unlink()
    done = run_command(_env_without_origin(fresh_data_dir), ["serve", "--port", "1"],
                       timeout=60)
    assert done.returncode == 2
    assert "set CADENA_LEDGER_ORIGIN to the origin chosen at bootstrap" in done.stderr


def test_a_fresh_serve_answers_and_says_how_to_bootstrap(fresh_data_dir: Path) -> None:
    """The README's first command: no bootstrap, no origin, and a server that says so."""
    with serve(_env_without_origin(fresh_data_dir)) as server, \
            httpx.Client(base_url=server.url) as http:
        assert http.get("/healthz").status_code == 200
        assert http.get("/v1/ledger/checkpoint").status_code == 503  # nothing signed
        log = server.log_tail()
    assert "not bootstrapped yet" in log
    assert "cadena-server bootstrap --origin NAME" in log
    assert not get_settings().resolved_ledger_origin_path().exists()
