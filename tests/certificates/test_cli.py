"""``cadena certificate``: verify and print offline; issue, permit and refresh online."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from client.certificate.pdf import extract_bundle
from custody import parse_bundle
from tests.app.conftest import sign_checkpoint_now
from tests.app.test_packets_support import last_entry
from tests.certificates.helpers import COURT, EVIDENCE, History, checkpointing, history
from tests.client.conftest import Cli, cli, quiet_server_logs  # noqa: F401 - fixtures


def _issued(cli: Cli, tmp_path: Path) -> tuple[History, Path]:  # noqa: F811
    h = history(cli.world)
    path = tmp_path / "certificate.json"
    path.write_bytes(h.certificate())
    return h, path


def test_verify_prints_what_holds_and_exits_zero(cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    h, path = _issued(cli, tmp_path)
    key = cli.world.client.get("/v1/certificates/key").text.strip()
    result = cli.run("certificate", "verify", str(path), "--trusted-key", key)
    assert "HOLDS" in result.stdout
    assert "Result: VALID: every check holds." in result.stdout
    assert "DOES NOT HOLD" not in result.stdout
    assert COURT in result.stdout


def test_verify_without_a_pinned_key_says_so(cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    _, path = _issued(cli, tmp_path)
    result = cli.run("certificate", "verify", str(path))
    assert "seal key was taken from the certificate itself" in result.stdout


def test_verify_reports_a_tampered_file_and_exits_one(cli: Cli,  # noqa: F811
                                                      tmp_path: Path) -> None:
    _, path = _issued(cli, tmp_path)
    obj = json.loads(path.read_bytes())
    obj["certificate"]["issued_to"] = "Tribunal de otra causa"
    path.write_text(json.dumps(obj))
    result = cli.run("certificate", "verify", str(path), code=1)
    assert "DOES NOT HOLD  certificate issue" in result.stdout
    assert "DOES NOT HOLD  seal" in result.stdout
    assert "NOT VALID: 2 check(s) do not hold: certificate issue, seal." in result.stdout
    report = json.loads(cli.run("certificate", "verify", str(path), "--json", code=1).stdout)
    assert not report["ok"]
    assert {c["name"] for c in report["checks"] if not c["ok"]} == {
        "certificate issue", "seal"}
    # Each detail also as a message id with parameters (what the desk translates): the id
    # filled with the parameters is the English detail.
    issue = next(c for c in report["checks"] if c["name"] == "certificate issue")
    assert issue["message"]["id"] == ("the last entry (%(index)s, %(action)s) does not issue "
                                      "this certificate to %(court)s for %(purpose)s")
    assert issue["message"]["params"]["court"] == "'Tribunal de otra causa'"
    assert issue["message"]["id"] % issue["message"]["params"] == issue["detail"]
    assert [n["id"] for n in report["note_messages"]] == [
        "the witness policy is the certificate's own (sealed by the centre); give --policy to "
        "apply the court's",
        "the seal key was taken from the certificate itself (%(key)s); compare it with the "
        "centre's published key or give --trusted-key"]
    assert [n["id"] % n["params"] for n in report["note_messages"]] == report["notes"]


def test_verify_with_evidence_and_the_courts_policy(cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    h, path = _issued(cli, tmp_path)
    record = tmp_path / "packet.json"
    statement, signature = h.statement()
    record.write_text(json.dumps({"statement": base64.b64encode(statement).decode(),
                                  "statement_signature": base64.b64encode(signature).decode()}))
    disclosed = tmp_path / "disclosed.json"
    cli.run("certificate", "disclose", str(path), str(record), "--liaison", "bob",
            "--out", str(disclosed))
    evidence, other = tmp_path / "evidence.txt", tmp_path / "other.txt"
    evidence.write_bytes(EVIDENCE)
    other.write_bytes(b"not the exhibit")
    policy = tmp_path / "court.policy"
    ledger_key = cli.world.client.get("/v1/ledger/key").text.strip()
    policy.write_text(f"# the court's policy\nlog {ledger_key}\nquorum none\n")
    ok = cli.run("certificate", "verify", str(disclosed), "--evidence", str(evidence),
                 "--policy", str(policy))
    assert "matches attachment 'evidence.txt'" in ok.stdout
    assert "give --policy" not in ok.stdout
    bad = cli.run("certificate", "verify", str(disclosed), "--evidence", str(other), code=1)
    assert "matches no digest the sender signed" in bad.stdout


def test_pdf_command_writes_a_pdf_whose_bundle_verifies(cli: Cli,  # noqa: F811
                                                        tmp_path: Path) -> None:
    _, path = _issued(cli, tmp_path)
    pdf = tmp_path / "certificate.pdf"
    cli.run("certificate", "pdf", str(path), "-o", str(pdf))
    assert extract_bundle(pdf.read_bytes()) == path.read_bytes()
    result = cli.run("certificate", "verify", str(pdf))
    assert "VALID" in result.stdout


def test_issue_waits_for_the_sealed_certificate_then_refresh_reissues(
        cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setattr(cli.world.settings, "checkpoint_interval", 0.05)  # Retry-After: 1
    h = history(cli.world, handling="H1", share=False)
    cli.profile_for("alice", h.ex.alice)
    cli.profile_for("bob", h.ex.bob)
    out = tmp_path / "issued.json"
    refused = cli.run("certificate", "issue", h.packet_id, "--to", COURT, "--purpose", "trial",
                      "-o", str(out), "--profile", "bob", code=3)
    assert "judicial use" in refused.stderr or "judicial use" in refused.stdout
    cli.run("certificate", "permit", h.packet_id, "--court", COURT, "--profile", "alice")
    with checkpointing(cli.world):
        issued = cli.run("certificate", "issue", h.packet_id, "--to", COURT, "--purpose",
                         "trial", "-o", str(out), "--profile", "bob")
        first = parse_bundle(out.read_bytes()).certificate
        refreshed = tmp_path / "refreshed.json"
        again = cli.run("certificate", "refresh", str(out), "-o", str(refreshed),
                        "--profile", "bob")
    assert f"certificate {first.id} recorded" in issued.stderr
    assert first.issued_to == COURT
    second = parse_bundle(refreshed.read_bytes()).certificate
    assert f"re-issuing {first.id}" in again.stdout
    assert second.id != first.id
    key = cli.run("certificate", "key", "--profile", "bob").stdout.strip()
    for path in (out, refreshed):
        cli.run("certificate", "verify", str(path), "--trusted-key", key)


def test_issue_without_a_checkpoint_says_it_is_pending_and_collect_gets_it_later(
        cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setattr(cli.world.settings, "checkpoint_interval", 0.05)
    h = history(cli.world, share=False)
    cli.profile_for("bob", h.ex.bob)
    out = tmp_path / "issued.json"
    pending = cli.run("certificate", "issue", h.packet_id, "--to", COURT, "--purpose", "trial",
                      "-o", str(out), "--profile", "bob", "--wait", "1.5", code=4)
    assert "waiting for the next checkpoint" in pending.stderr
    assert "not sealed yet" in pending.stderr
    assert not out.exists()
    certificate_id = last_entry(cli.world).details["certificate"]
    sign_checkpoint_now(cli.world)
    cli.run("certificate", "collect", certificate_id, "-o", str(out), "--profile", "bob")
    assert parse_bundle(out.read_bytes()).certificate.id == certificate_id
