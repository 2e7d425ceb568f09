"""A witness registered after the backup: `restore --witness URL` asks it, and so does `serve`.

The restored database does not know that witness. The URL given to restore
is remembered in the data directory (0600), so ``serve`` refuses as restore
did, with a real witness that cosigned entries the backup lacks; the
refusal names the witness, its claim, and how to check it.
"""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from bench._server import run_command
from ledger import NoteVerifier, open_checkpoint
from tests.app.backup_support import Shared, Witnessed, witness_size
from tests.certificates.witness_processes import CADENA
from tests.reliability.harness import ORIGIN, Server, ServerConfig


def test_a_witness_given_to_restore_is_asked_by_serve_too(
        tmp_path: Path, witnessed: Shared[Witnessed]) -> None:
    shared = witnessed("sqlite")
    node, archive, cosigned = shared.node, shared.before_witness, shared.cosigned
    backed_up = shared.before_witness_entries
    assert cosigned > backed_up

    target = ServerConfig(tmp_path / "restored")
    bad = run_command(target.env(), ["restore", str(archive), "--witness", "ftp://x"])
    assert bad.returncode == 2
    assert "not an http(s) URL" in bad.stderr
    assert not (target.data_dir / "ledger.key").exists()

    done = run_command(target.env(), ["restore", str(archive), "--witness", node.url])
    assert done.returncode == 3, done.stdout + done.stderr
    assert f"{cosigned - backed_up} entries were lost since the backup" in done.stderr
    remembered = target.data_dir / "restore-witnesses"
    assert stat.S_IMODE(remembered.stat().st_mode) == 0o600
    assert node.url in remembered.read_text().splitlines()

    refused = Server(target, tmp_path / "refused.log")
    with pytest.raises(AssertionError, match="server exited 3"):
        refused.start(timeout=60)
    log = refused.log_text()
    assert f"{cosigned - backed_up} entries were lost since the backup" in log
    assert f"{node.url} claims {cosigned}" in log
    assert "cadena witness latest" in log
    assert witness_size(node.directory, ORIGIN) == cosigned

    # What the refusal tells the operator to ask for: the note this ledger signed.
    shown = subprocess.run([*CADENA, "witness", "latest", "-c",
                            str(node.directory / "witness.toml")],
                           capture_output=True, text=True, check=True, timeout=60)
    assert f"== {ORIGIN}: size {cosigned}," in shown.stdout
    note = shown.stdout.split("\n", 1)[1]
    assert open_checkpoint(note, NoteVerifier.from_string(shared.log_key)).size == cosigned
