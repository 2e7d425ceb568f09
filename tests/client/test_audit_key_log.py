"""``cadena audit verify`` recomputes the key log and checks every checkpoint's key root.

The dishonest operator holds the ledger key: it re-signs a stored
checkpoint over a ``cadena-key-log`` line the entries do not give (another
root, another size, or none after checkpoints that carried one), as its
checkpointer would sign a directory with a rogue key entry hidden. The
auditor's client catches it live (first run, incremental, ``--full``) and
from an export, at the checkpoint's last index, as ``cadena-server ledger
verify`` reports it; honest runs pass.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from app.ledger.key import load_note_signer
from app.ledger.unit_of_work import transaction
from app.models.ledger import LEDGER_TABLES
from client.audit import audit_ledger
from client.errors import AuditFailure, AuditFault
from client.sdk import Client
from ledger import (
    Checkpoint,
    NoteVerifier,
    StoredCheckpoint,
    extension_line,
    key_log_head,
    open_checkpoint,
    sign_checkpoint,
    verify_ledger,
)
from ledger.sql import SqlStorage
from tests.app.conftest import World
from tests.client.conftest import Cli, sdk_for, sessions, verifier_key
from tests.client.conftest import sign_checkpoint as sign_now
from tests.client.test_audit import _append, _auditor, _exec, _verify

T = LEDGER_TABLES
FORGERIES = ("root", "size", "drop")


def _grow(w: World, tag: str) -> StoredCheckpoint:
    """Key entries (a state and a liaison enrolled) and others, then a checkpoint."""
    w.liaison(f"{tag}-l", "CO")
    _append(w, 2, tag)
    return sign_now(w)


def _stored(w: World) -> list[StoredCheckpoint]:
    with sessions(w)() as session:
        rows = session.execute(select(T.checkpoints.c.size, T.checkpoints.c.root,
                                      T.checkpoints.c.note).order_by(T.checkpoints.c.size))
        return [StoredCheckpoint(r.size, bytes(r.root), r.note) for r in rows]


def _forge(w: World, stored: StoredCheckpoint, how: str, n: int = 0) -> str:
    """Re-sign ``stored`` with the real ledger key over a false key log; store and return it."""
    honest = open_checkpoint(stored.note, NoteVerifier.from_string(verifier_key(w)))
    head = key_log_head(honest)
    assert head is not None
    if how == "root":
        other = (n % 255 + 1).to_bytes(1, "big") * 32
        lines: tuple[str, ...] = (extension_line(head.size, other),)
    elif how == "size":
        lines = (extension_line(head.size + 1 + n % 50, head.root),)
    else:
        lines = ()
    forged = Checkpoint(honest.origin, honest.size, honest.root, lines)
    signer = load_note_signer(w.settings.resolved_ledger_key_path(), w.settings.ledger_origin)
    note = sign_checkpoint(forged, signer)
    _restore(w, StoredCheckpoint(stored.size, stored.root, note))
    return note


def _restore(w: World, stored: StoredCheckpoint) -> None:
    _exec(w, update(T.checkpoints).where(T.checkpoints.c.size == stored.size)
          .values(note=stored.note))


def _server_verdict(w: World) -> tuple[bool, str | None, int | None]:
    with transaction(sessions(w)) as session:
        report = verify_ledger(SqlStorage(session, T),
                               NoteVerifier.from_string(verifier_key(w)))
    return report.ok, report.fault.value if report.fault else None, report.first_bad_index


def _export_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _write(path: Path, objs: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(o, sort_keys=True) + "\n" for o in objs))
    return path


@pytest.fixture
def grown(world: World) -> list[StoredCheckpoint]:
    """A ledger with several checkpoints, each after new key entries."""
    world.liaison("aud0", "CO", role="auditor")
    sign_now(world)
    world.state("MX")
    for tag in ("a", "b", "c"):
        _grow(world, tag)
    return _stored(world)


def test_honest_runs_pass_first_incremental_full_and_from_an_export(
        cli: Cli, world: World, grown: list[StoredCheckpoint], tmp_path: Path) -> None:
    aud = _auditor(cli, world)
    first = sign_now(world)
    assert _verify(cli, *aud)["downloaded"] == first.size
    state = json.loads((cli.home / "aud" / "audit-state.json").read_text())
    head = key_log_head(open_checkpoint(first.note, NoteVerifier.from_string(
        verifier_key(world))))
    assert head is not None
    assert (state["v"], state["key_log"]["size"], state["key_log"]["carried"]) == (
        2, head.size, True)
    later = _grow(world, "d")
    report = _verify(cli, *aud)
    assert (report["from_index"], report["downloaded"]) == (first.size, later.size - first.size)
    assert _verify(cli, *aud, "--full")["downloaded"] == later.size
    export = tmp_path / "ledger.jsonl"
    cli.run("audit", "export", str(export), *aud)
    lines = _export_lines(export)
    assert lines[0]["v"] == 1
    carried = [(o["size"], o["checkpoint"]) for o in lines[0]["checkpoints"]]
    assert carried == [(cp.size, cp.note) for cp in _stored(world)]
    assert all("entry" in o for o in lines[1:])  # version 1 readers read it as before
    assert _verify(cli, "--file", str(export), *aud)["entries"] == later.size
    assert _server_verdict(world) == (True, None, None)


@pytest.fixture
def auditor_sdk(world: World, grown: list[StoredCheckpoint]) -> Iterator[Client]:
    """One auditor's SDK client for every example (a login each would hit the rate limit)."""
    with sdk_for(world, world.liaison("aud-sdk", "CO", role="auditor")) as client:
        yield client


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.integers(0, 100), how=st.sampled_from(FORGERIES), n=st.integers(0, 10_000))
def test_a_resigned_key_root_is_caught_wherever_it_is(
        world: World, grown: list[StoredCheckpoint], auditor_sdk: Client, which: int, how: str,
        n: int) -> None:
    target = grown[which % len(grown)]
    verifier = NoteVerifier.from_string(verifier_key(world))
    first_carrier = next(cp for cp in grown
                         if key_log_head(open_checkpoint(cp.note, verifier)) is not None)
    _forge(world, target, how, n)
    try:
        if how == "drop" and target.size <= first_carrier.size:
            audit_ledger(auditor_sdk.ledger, verifier, None)  # none carried one before: allowed
            return
        with pytest.raises(AuditFailure) as failure:
            audit_ledger(auditor_sdk.ledger, verifier, None)
        assert (failure.value.fault, failure.value.index) == (AuditFault.KEY_LOG_MISMATCH,
                                                               target.size - 1)
        assert _server_verdict(world) == (False, "key_log_mismatch", target.size - 1)
    finally:
        _restore(world, target)


def test_the_cli_reports_it_live_refuses_to_export_it_and_catches_it_offline(
        cli: Cli, world: World, grown: list[StoredCheckpoint], tmp_path: Path) -> None:
    aud = _auditor(cli, world)
    latest = sign_now(world)
    honest_export = tmp_path / "honest.jsonl"
    cli.run("audit", "export", str(honest_export), *aud)
    target = grown[2]
    forged = _forge(world, target, "root")
    report = _verify(cli, *aud, "--reset", code=1)
    assert (report["fault"], report["first_bad_index"]) == ("key_log_mismatch", target.size - 1)
    assert "the entries give" in report["detail"]
    plain = cli.run("audit", "verify", *aud, "--reset", code=1).stdout
    assert "LEDGER FAILED" in plain
    assert "key_log_mismatch" in plain
    refused = tmp_path / "refused.jsonl"
    cli.run("audit", "export", str(refused), *aud, code=1)
    assert not refused.exists()
    # The operator hands over an export carrying the checkpoint it signed.
    header, *entries = _export_lines(honest_export)
    listed = [{**o, "checkpoint": forged} if o["size"] == target.size else o
              for o in header["checkpoints"]]
    handed = _write(tmp_path / "handed.jsonl", [{**header, "checkpoints": listed}, *entries])
    report = _verify(cli, "--file", str(handed), *aud, code=1)
    assert (report["fault"], report["first_bad_index"]) == ("key_log_mismatch", target.size - 1)
    assert latest.size > target.size


def test_an_incremental_run_checks_the_new_checkpoints_and_full_the_old_ones(
        cli: Cli, world: World, grown: list[StoredCheckpoint]) -> None:
    aud = _auditor(cli, world)
    seen = sign_now(world)
    _verify(cli, *aud)
    _forge(world, grown[1], "size")  # below what was verified: not downloaded again
    new = _grow(world, "d")
    _forge(world, new, "root")
    report = _verify(cli, *aud, code=1)
    assert (report["fault"], report["first_bad_index"]) == ("key_log_mismatch", new.size - 1)
    _restore(world, new)
    assert _verify(cli, *aud)["from_index"] == seen.size
    report = _verify(cli, *aud, "--full", code=1)
    assert (report["fault"], report["first_bad_index"]) == ("key_log_mismatch",
                                                            grown[1].size - 1)


def test_a_version_1_state_makes_one_full_run_then_runs_stay_incremental(
        cli: Cli, world: World, grown: list[StoredCheckpoint]) -> None:
    aud = _auditor(cli, world)
    first = sign_now(world)
    _verify(cli, *aud)
    path = cli.home / "aud" / "audit-state.json"
    old = json.loads(path.read_text())
    del old["key_log"]
    path.write_text(json.dumps({**old, "v": 1}))
    later = _grow(world, "d")
    report = _verify(cli, *aud)
    assert (report["from_index"], report["downloaded"]) == (0, later.size)
    assert report["continued"] == f"from size {first.size}, consistency proof verified"
    assert json.loads(path.read_text())["v"] == 2
    newest = _grow(world, "e")
    assert _verify(cli, *aud)["downloaded"] == newest.size - later.size


def test_an_export_without_the_listed_checkpoints_is_checked_at_its_header(
        cli: Cli, world: World, grown: list[StoredCheckpoint], tmp_path: Path) -> None:
    aud = _auditor(cli, world)
    sign_now(world)
    export = tmp_path / "ledger.jsonl"
    cli.run("audit", "export", str(export), *aud)
    header, *entries = _export_lines(export)
    del header["checkpoints"]  # as an export written before the field existed
    assert _verify(cli, "--file", str(_write(tmp_path / "old.jsonl", [header, *entries])),
                   *aud)["ok"]
    latest = _stored(world)[-1]
    forged = _forge(world, latest, "root")
    bad = _write(tmp_path / "bad.jsonl", [{**header, "checkpoint": forged}, *entries])
    report = _verify(cli, "--file", str(bad), *aud, code=1)
    assert (report["fault"], report["first_bad_index"]) == ("key_log_mismatch", latest.size - 1)


@pytest.mark.parametrize("change", ["reversed", "too big", "not a note", "wrong size"])
def test_a_damaged_checkpoint_list_is_a_bad_export(
        cli: Cli, world: World, grown: list[StoredCheckpoint], tmp_path: Path,
        change: str) -> None:
    aud = _auditor(cli, world)
    sign_now(world)
    export = tmp_path / "ledger.jsonl"
    cli.run("audit", "export", str(export), *aud)
    header, *entries = _export_lines(export)
    listed = header["checkpoints"]
    assert len(listed) > 2
    damaged = {
        "reversed": listed[::-1],
        "too big": [*listed, {**listed[-1], "size": header["size"] + 1}],
        "not a note": [{**listed[0], "checkpoint": 7}, *listed[1:]],
        "wrong size": [{**listed[0], "size": listed[0]["size"] - 1}, *listed[1:]],
    }[change]
    path = _write(tmp_path / "damaged.jsonl", [{**header, "checkpoints": damaged}, *entries])
    assert _verify(cli, "--file", str(path), *aud, code=1)["fault"] == "bad_export"
