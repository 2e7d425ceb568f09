"""``cadena audit``: the auditor's incremental verification catches every lie of the server.

The server is real; its lies are made the way someone with database access
would make them: by changing the ledger's rows between two runs.
"""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey
from sqlalchemy import delete, select, update

from app.ledger.engine import make_engine
from app.ledger.recording import draft, record
from app.ledger.unit_of_work import transaction
from app.models.ledger import KEY_LOG_TABLES, LEDGER_TABLES
from client.audit import audit_ledger
from client.errors import AuditFailure, AuditFault
from ledger import Checkpoint, NoteSigner, NoteVerifier, leaf_hash, open_checkpoint, sign_checkpoint
from tests.app.conftest import World
from tests.client.conftest import Cli, sdk_for, sessions, verifier_key
from tests.client.conftest import sign_checkpoint as sign_now

T = LEDGER_TABLES


def _exec(w: World, *statements: Any) -> None:
    engine = make_engine(w.settings.resolved_database_url())
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(statement)
    finally:
        engine.dispose()


def _raw(w: World, index: int) -> bytes:
    return w.entries()[index].raw


def _append(w: World, count: int, tag: str) -> None:
    """Append ``count`` entries straight through the ledger (exact sizes, no API noise)."""
    with transaction(sessions(w)) as session:
        for i in range(count):
            record(session, draft(None, "test.append", {"type": "test", "id": f"{tag}-{i}"}))


def _truncate(w: World, size: int) -> None:
    """Roll the stored ledger back to its first ``size`` entries, checkpoints included.

    ``size`` is a checkpoint's: the operator rolls its key log back with it,
    so that its checkpointer signs the fork as it signed the honest tree.
    """
    last = leaf_hash(_raw(w, size - 1))
    _exec(w, delete(T.checkpoints).where(T.checkpoints.c.size > size),
          delete(T.nodes).where(T.nodes.c.last_leaf >= size),
          delete(T.entries).where(T.entries.c.index >= size),
          update(T.head).values(size=size, last_leaf_hash=last))
    K = KEY_LOG_TABLES
    with transaction(sessions(w)) as session:
        key_size = session.execute(select(K.checkpoints.c.key_size)
                                   .where(K.checkpoints.c.size == size)).scalar_one()
        stale = [(level, index) for level, index in session.execute(
            select(K.nodes.c.level, K.nodes.c.index)) if (index + 1) << level > key_size]
        for level, index in stale:
            session.execute(delete(K.nodes).where(K.nodes.c.level == level,
                                                  K.nodes.c.index == index))
        session.execute(delete(K.checkpoints).where(K.checkpoints.c.size > size))
        session.execute(delete(K.leaves).where(K.leaves.c.index >= key_size))
        session.execute(update(K.head).values(ledger_size=size, size=key_size))


def _auditor(cli: Cli, w: World) -> tuple[str, ...]:
    # The ledger key alone (no directory checks at login): these tests are the audit's.
    cli.profile_for("aud", w.liaison("aud", "CO", role="auditor"), trust=False)
    cli.run("profile", "set", "--profile", "aud", "--ledger-key", verifier_key(w))
    return ("--profile", "aud", "--quiet")


def _verify(cli: Cli, *args: str, code: int = 0) -> dict[str, Any]:
    result = cli.run("audit", "verify", *args, "--json", code=code)
    data: dict[str, Any] = json.loads(result.stdout)
    assert data["ok"] is (code == 0)
    return data


def test_clean_ledger_verifies_against_the_trust_roots_ledger_key(cli: Cli, world: World) -> None:
    cli.profile_for("aud", world.liaison("aud", "CO", role="auditor"))
    aud = ("--profile", "aud", "--quiet")
    checkpoint = sign_now(world)
    result = cli.run("audit", "verify", *aud)
    assert "ledger verified" in result.stdout
    assert re.search(rf"^  size: +{checkpoint.size}$", result.stdout, re.M), result.stdout
    profile = cli.json("profile", "show", "--profile", "aud")
    assert profile["ledger_key"] == verifier_key(world)
    state_file = cli.home / "aud" / "audit-state.json"
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
    assert json.loads(state_file.read_text())["size"] == checkpoint.size


def test_the_ledger_key_is_never_learnt_from_the_server(cli: Cli, world: World) -> None:
    cli.profile_for("aud", world.liaison("aud", "CO", role="auditor"), trust=False)
    sign_now(world)
    refused = cli.run("audit", "verify", "--profile", "aud", "--quiet", code=2)
    assert "no ledger key to verify with" in refused.stderr
    assert cli.json("profile", "show", "--profile", "aud")["ledger_key"] is None
    assert not (cli.home / "aud" / "audit-state.json").exists()
    given = cli.run("audit", "verify", "--profile", "aud", "--quiet", "--key",
                    verifier_key(world))
    assert given.exit_code == 0


def test_second_run_downloads_only_new_entries_and_proves_consistency(
        cli: Cli, world: World) -> None:
    aud = _auditor(cli, world)
    first = sign_now(world)
    assert _verify(cli, *aud)["downloaded"] == first.size
    world.state("MX")
    world.liaison("ana", "MX")
    second = sign_now(world)
    report = _verify(cli, *aud)
    assert report["from_index"] == first.size
    assert report["downloaded"] == second.size - first.size
    assert report["continued"] == f"from size {first.size}, consistency proof verified"
    reads = [e for e in world.entries() if e.action == "ledger.entries"]
    assert int(reads[-1].subject["id"].split("+")[0]) >= first.size
    assert _verify(cli, *aud)["downloaded"] == 0  # same checkpoint: nothing to fetch


def test_sdk_audit_pages_and_reports_progress(world: World) -> None:
    aud = world.liaison("aud", "CO", role="auditor")
    checkpoint = sign_now(world)
    seen: list[tuple[int, int]] = []
    verifier = NoteVerifier.from_string(verifier_key(world))
    with sdk_for(world, aud) as client:
        result = audit_ledger(client.ledger, verifier, None, page_size=3,
                              progress=lambda done, total: seen.append((done, total)))
    assert result.state.size == checkpoint.size
    assert result.state.root == checkpoint.root
    assert seen[-1] == (checkpoint.size, checkpoint.size)
    assert len(seen) > 2


def test_sdk_lists_the_signed_checkpoints_that_proofs_answer_for(world: World) -> None:
    aud = world.liaison("aud", "CO", role="auditor")
    first = sign_now(world)
    world.state("MX")
    second = sign_now(world)
    verifier = NoteVerifier.from_string(verifier_key(world))
    with sdk_for(world, aud) as client:
        page = client.ledger.checkpoints(after=0, limit=1)
        listed = client.ledger.all_checkpoints()
        later = client.ledger.all_checkpoints(after=first.size)
        for item in listed:
            opened = open_checkpoint(item.note, verifier)
            assert (opened.size, opened.root) == (item.size, item.root_bytes())
            assert client.ledger.inclusion_proof(0, item.size)  # a size with proofs
    assert [cp.size for cp in page.checkpoints] == [first.size]
    assert page.next == first.size
    assert [cp.size for cp in listed] == [first.size, second.size]
    assert [cp.size for cp in later] == [second.size]


def test_modified_entry_is_caught_and_located(cli: Cli, world: World) -> None:
    aud = _auditor(cli, world)
    sign_now(world)
    target = next(e for e in world.entries() if e.action == "auth.login")
    forged = target.raw.replace(b'"auth.login"', b'"auth.logout"')
    _exec(world, update(T.entries).where(T.entries.c.index == target.index).values(entry=forged))
    report = _verify(cli, *aud, code=1)
    assert report["fault"] == "modified_entry"
    assert report["first_bad_index"] == target.index
    assert not (cli.home / "aud" / "audit-state.json").exists()


def test_garbage_entry_is_malformed(cli: Cli, world: World) -> None:
    aud = _auditor(cli, world)
    sign_now(world)
    _exec(world, update(T.entries).where(T.entries.c.index == 2).values(entry=b"{oops"))
    report = _verify(cli, *aud, code=1)
    assert (report["fault"], report["first_bad_index"]) == ("malformed_entry", 2)


def test_last_entry_modified_gives_root_mismatch(cli: Cli, world: World) -> None:
    aud = _auditor(cli, world)
    checkpoint = sign_now(world)
    last = _raw(world, checkpoint.size - 1)
    forged = last.replace(b'"time":"2', b'"time":"1', 1)
    _exec(world, update(T.entries).where(T.entries.c.index == checkpoint.size - 1)
          .values(entry=forged))
    assert _verify(cli, *aud, code=1)["fault"] == "root_mismatch"


def test_forged_checkpoint_is_refused(cli: Cli, world: World) -> None:
    aud = _auditor(cli, world)
    checkpoint = sign_now(world)
    impostor = NoteSigner(world.settings.ledger_origin, SigningKey.generate())
    note = sign_checkpoint(Checkpoint(world.settings.ledger_origin, checkpoint.size,
                                      bytes(32)), impostor)
    cli.run("profile", "set", "--profile", "aud", "--ledger-key", verifier_key(world))
    _exec(world, update(T.checkpoints).where(T.checkpoints.c.size == checkpoint.size)
          .values(note=note))
    report = _verify(cli, *aud, code=1)
    assert report["fault"] == "bad_checkpoint_signature"
    assert "pinned ledger key" in report["detail"]


def test_altered_checkpoint_text_is_refused(cli: Cli, world: World) -> None:
    aud = _auditor(cli, world)
    checkpoint = sign_now(world)
    _verify(cli, *aud)
    world.state("MX")
    bigger = sign_now(world)
    altered = bigger.note.replace(f"\n{bigger.size}\n", f"\n{bigger.size + 5}\n")
    _exec(world, update(T.checkpoints).where(T.checkpoints.c.size == bigger.size)
          .values(note=altered))
    assert _verify(cli, *aud, code=1)["fault"] == "bad_checkpoint_signature"
    assert checkpoint.size < bigger.size


def test_rolled_back_ledger_is_a_loud_failure(cli: Cli, world: World) -> None:
    aud = _auditor(cli, world)
    early = sign_now(world)
    world.state("MX")
    sign_now(world)
    _verify(cli, *aud)
    _truncate(world, early.size)
    report = _verify(cli, *aud, code=1)
    assert report["fault"] == "rollback"
    assert "rolled back" in report["detail"]
    plain = cli.run("audit", "verify", *aud, code=1)
    assert "LEDGER FAILED" in plain.stdout
    assert "rollback" in plain.stdout


def test_forked_ledger_of_equal_size_is_caught(cli: Cli, world: World) -> None:
    aud = _auditor(cli, world)
    early = sign_now(world)
    _append(world, 5, "honest")
    seen = sign_now(world)
    _verify(cli, *aud)
    _truncate(world, early.size)
    _append(world, seen.size - early.size, "forked")
    assert sign_now(world).size == seen.size
    report = _verify(cli, *aud, code=1)
    assert report["fault"] == "fork"
    assert "different roots" in report["detail"]


def test_forked_ledger_that_grew_fails_the_consistency_proof(cli: Cli, world: World) -> None:
    aud = _auditor(cli, world)
    early = sign_now(world)
    _append(world, 5, "honest")
    seen = sign_now(world)
    _verify(cli, *aud)
    _truncate(world, early.size)
    _append(world, seen.size - early.size, "forked")
    sign_now(world)
    _append(world, 3, "more")
    sign_now(world)
    report = _verify(cli, *aud, code=1)
    assert report["fault"] == "fork"
    assert "not consistent" in report["detail"]


def test_fork_without_the_old_checkpoint_is_caught(cli: Cli, world: World) -> None:
    aud = _auditor(cli, world)
    early = sign_now(world)
    _append(world, 5, "honest")
    seen = sign_now(world)
    _verify(cli, *aud)
    _truncate(world, early.size)  # the fork never signs a checkpoint of size seen.size
    assert early.size + 20 > seen.size
    _append(world, 20, "forked")
    sign_now(world)
    report = _verify(cli, *aud, code=1)
    assert report["fault"] == "fork"
    assert "cannot prove consistency" in report["detail"]


def test_entries_missing_from_the_tail_stop_the_server_logging_on_top_of_them(
        cli: Cli, world: World) -> None:
    # The head no longer matches the last entry: no access can be logged
    # (invariant 2), so none is served; `cadena-server ledger verify` names it.
    aud = _auditor(cli, world)
    checkpoint = sign_now(world)
    _exec(world, delete(T.entries).where(T.entries.c.index >= checkpoint.size - 2))
    result = cli.run("audit", "verify", *aud, "--json", code=None)
    assert result.exit_code != 0
    assert len(world.entries()) == checkpoint.size - 2


def test_deleted_middle_entry_is_an_index_mismatch(cli: Cli, world: World) -> None:
    aud = _auditor(cli, world)
    sign_now(world)
    _exec(world, delete(T.entries).where(T.entries.c.index == 3))
    report = _verify(cli, *aud, code=1)
    assert (report["fault"], report["first_bad_index"]) == ("index_mismatch", 3)


def test_incremental_run_checks_new_entries_and_full_run_checks_old_ones(
        cli: Cli, world: World) -> None:
    aud = _auditor(cli, world)
    sign_now(world)
    _verify(cli, *aud)
    old = _raw(world, 1)
    _exec(world, update(T.entries).where(T.entries.c.index == 1)
          .values(entry=old.replace(b'"time":"2', b'"time":"1', 1)))
    world.state("MX")
    sign_now(world)
    assert _verify(cli, *aud)["downloaded"] > 0  # entry 1 is not downloaded again
    report = _verify(cli, *aud, "--full", code=1)
    assert (report["fault"], report["first_bad_index"]) == ("modified_entry", 1)


def _with_prev(raw: bytes, prev: str) -> bytes:
    at = raw.index(b'"prev":"') + len(b'"prev":"')
    return raw[:at] + prev.encode() + raw[at + 64:]


def test_full_run_names_the_entry_whose_link_was_changed_not_the_one_before(
        cli: Cli, world: World) -> None:
    # Entry 5 now links to a wrong hash: entry 4 is intact (the signed tree
    # proves it), so entry 5 is the one modified.
    aud = _auditor(cli, world)
    sign_now(world)
    _verify(cli, *aud)
    _exec(world, update(T.entries).where(T.entries.c.index == 5)
          .values(entry=_with_prev(_raw(world, 5), "ab" * 32)))
    report = _verify(cli, *aud, "--full", code=1)
    assert (report["fault"], report["first_bad_index"]) == ("modified_entry", 5)


def test_full_run_still_names_a_changed_entry_by_its_own_index(
        cli: Cli, world: World) -> None:
    aud = _auditor(cli, world)
    sign_now(world)
    _verify(cli, *aud)
    old = _raw(world, 5)
    _exec(world, update(T.entries).where(T.entries.c.index == 5)
          .values(entry=old.replace(b'"time":"2', b'"time":"1', 1)))
    report = _verify(cli, *aud, "--full", code=1)
    assert (report["fault"], report["first_bad_index"]) == ("modified_entry", 5)


def test_text_report_keeps_labels_apart_from_values(
        cli: Cli, world: World, tmp_path: Path) -> None:
    aud = _auditor(cli, world)
    checkpoint = sign_now(world)
    export = tmp_path / "ledger.jsonl"
    cli.run("audit", "export", str(export), *aud)
    _verify(cli, *aud)
    clean = cli.run("audit", "verify", "--file", str(export), *aud).stdout
    assert re.search(r"^  matches profile: +root at size \d+ ", clean, re.M), clean
    lines = export.read_text().splitlines()
    short = tmp_path / "short.jsonl"
    short.write_text("\n".join(lines[:-1]) + "\n")
    failed = cli.run("audit", "verify", "--file", str(short), *aud, code=1).stdout
    assert re.search(rf"^  first bad index: +{checkpoint.size - 1}$", failed, re.M), failed
    assert re.search(r"^  fault: +truncated$", failed, re.M), failed


def test_export_verifies_offline_and_tampering_is_caught(
        cli: Cli, world: World, tmp_path: Path) -> None:
    aud = _auditor(cli, world)
    checkpoint = sign_now(world)
    export = tmp_path / "ledger.jsonl"
    cli.run("audit", "export", str(export), *aud)
    lines = export.read_text().splitlines()
    header = json.loads(lines[0])
    assert (header["format"], header["size"]) == ("cadena-ledger-export", checkpoint.size)
    assert len(lines) == checkpoint.size + 1
    assert _verify(cli, "--file", str(export), *aud)["entries"] == checkpoint.size
    _verify(cli, "--file", str(export), "--key", verifier_key(world), "--profile", "nobody")
    cli.run("audit", "verify", "--file", str(export), "--profile", "nobody", code=2)

    entry = json.loads(lines[3])
    entry["entry"] = entry["entry"][:-4] + ("AAAA" if entry["entry"][-4:] != "AAAA" else "BBBB")
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_text("\n".join([*lines[:3], json.dumps(entry), *lines[4:]]) + "\n")
    report = _verify(cli, "--file", str(tampered), *aud, code=1)
    assert report["fault"] in ("malformed_entry", "modified_entry")

    short = tmp_path / "short.jsonl"
    short.write_text("\n".join(lines[:-1]) + "\n")
    report = _verify(cli, "--file", str(short), *aud, code=1)
    assert (report["fault"], report["first_bad_index"]) == ("truncated", checkpoint.size - 1)
    other = NoteSigner(world.settings.ledger_origin, SigningKey.generate()).verifier_key()
    report = _verify(cli, "--file", str(export), "--key", other, "--profile", "nobody", code=1)
    assert (report["fault"], report["first_bad_index"]) == ("bad_checkpoint_signature",
                                                            checkpoint.size - 1)


def test_only_auditors_read_entries(cli: Cli, world: World) -> None:
    cli.profile_for("coord", world.coordinator)
    sign_now(world)
    result = cli.run("audit", "verify", "--profile", "coord", "--quiet", code=3)
    assert "auditor role" in result.stderr


@pytest.mark.parametrize("fault", list(AuditFault))
def test_every_fault_exits_1(fault: AuditFault) -> None:
    assert AuditFailure(fault, "x").exit_code == 1
