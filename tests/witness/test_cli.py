"""``cadena witness init | key | evidence`` and the configuration and key files."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ledger import ALG_COSIGNATURE_V1, NoteVerifier
from tests.witness.helpers import FakeLog
from witness.cli import build_witness, witness_app
from witness.config import WitnessConfigError, load_config, load_key, parse_config
from witness.errors import Conflict

runner = CliRunner()


def init(directory: Path, log: FakeLog, name: str = "witness.mx.example/w1") -> str:
    """Run ``cadena witness init``; return its output (the verifier key)."""
    result = runner.invoke(witness_app, ["init", "--name", name, "--dir", str(directory),
                                         "--log-key", log.signer.verifier_key()])
    assert result.exit_code == 0, result.output
    return result.output.strip()


def test_init_writes_a_private_key_and_prints_a_cosigner_key(tmp_path: Path) -> None:
    log = FakeLog()
    printed = init(tmp_path / "w", log)
    verifier = NoteVerifier.from_string(printed)
    assert (verifier.name, verifier.alg) == ("witness.mx.example/w1", ALG_COSIGNATURE_V1)
    key_file = tmp_path / "w" / "witness.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    config = load_config(tmp_path / "w" / "witness.toml")
    assert config.signer().verifier_key() == printed
    assert [str(k) for k in config.logs[log.origin]] == [log.signer.verifier_key()]


def test_init_never_overwrites(tmp_path: Path) -> None:
    init(tmp_path, FakeLog())
    result = runner.invoke(witness_app, ["init", "--name", "w.example/x", "--dir", str(tmp_path),
                                         "--log-key", FakeLog().signer.verifier_key()])
    assert result.exit_code == 2
    assert "exists" in result.output


def test_init_refuses_a_bad_log_key(tmp_path: Path) -> None:
    result = runner.invoke(witness_app, ["init", "--name", "w.example/x", "--dir", str(tmp_path),
                                         "--log-key", "not+a+key"])
    assert result.exit_code == 2
    assert not (tmp_path / "witness.key").exists()


def test_key_prints_the_verifier_key(tmp_path: Path) -> None:
    printed = init(tmp_path, FakeLog())
    result = runner.invoke(witness_app, ["key", "--config", str(tmp_path / "witness.toml")])
    assert (result.exit_code, result.output.strip()) == (0, printed)


def test_a_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    init(tmp_path, FakeLog())
    (tmp_path / "witness.key").chmod(0o644)
    with pytest.raises(WitnessConfigError, match="chmod 600"):
        load_key(tmp_path / "witness.key")
    result = runner.invoke(witness_app, ["key", "--config", str(tmp_path / "witness.toml")])
    assert result.exit_code == 2


def test_evidence_lists_forks_and_exits_1(tmp_path: Path) -> None:
    log = FakeLog().grow(8)
    init(tmp_path, log)
    config_path = str(tmp_path / "witness.toml")
    assert runner.invoke(witness_app, ["evidence", "-c", config_path]).exit_code == 0
    witness = build_witness(load_config(tmp_path / "witness.toml"))
    witness.add_checkpoint(log.request(0, 8))
    with pytest.raises(Conflict):
        witness.add_checkpoint(log.fork(4, 8).request(8, 8))
    result = runner.invoke(witness_app, ["evidence", "-c", config_path])
    assert result.exit_code == 1
    assert "== fork of log.example/test" in result.output
    assert log.note(8) in result.output
    assert log.fork(4, 8).note(8) in result.output


@pytest.mark.parametrize(("text", "message"), [
    ("name = ", "not TOML"),
    ('key_file = "k"\nstate_file = "s"', "'name'"),
    ('name = "has space"\nkey_file = "k"\nstate_file = "s"', "bad witness name"),
    ('name = "w"\nkey_file = "k"\nstate_file = "s"\nlogs = 3', "array of tables"),
    ('name = "w"\nkey_file = "k"\nstate_file = "s"\n[[logs]]\nkey = "x"', "bad log key"),
])
def test_bad_configurations_are_refused(text: str, message: str) -> None:
    with pytest.raises(WitnessConfigError, match=message):
        parse_config(text, Path())


def test_a_cosigner_key_is_not_accepted_as_a_log_key(tmp_path: Path) -> None:
    cosigner = init(tmp_path / "a", FakeLog())
    text = f'name = "w"\nkey_file = "k"\nstate_file = "s"\n[[logs]]\nkey = "{cosigner}"'
    with pytest.raises(WitnessConfigError, match="type 0x01"):
        parse_config(text, Path())


def test_serve_runs_the_witness_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn
    from fastapi.testclient import TestClient

    log = FakeLog().grow(4)
    init(tmp_path, log)
    served: dict[str, object] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.update(app=app, **kw))
    result = runner.invoke(witness_app, ["serve", "-c", str(tmp_path / "witness.toml"),
                                         "--port", "7999"])
    assert result.exit_code == 0, result.output
    assert (served["host"], served["port"]) == ("127.0.0.1", 7999)
    with TestClient(served["app"]) as http:  # type: ignore[arg-type]
        assert http.post("/add-checkpoint", content=log.request(0, 4)).status_code == 200
