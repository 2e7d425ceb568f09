"""The command line: trust roots set out of band, keys checked before use, self-monitoring."""

from __future__ import annotations

import json
from pathlib import Path

from crypto import LiaisonKeys
from tests.app.test_packets_support import Exchange
from tests.client.conftest import Cli, verifier_key
from tests.client.kt_support import (
    WITNESS,
    register_witness,
    rogue_key_row,
    rogue_rotation,
    witnessed_checkpoint,
)


def _trust(cli: Cli, name: str, quorum: int = 1) -> str:
    witnesses = ["--witness", WITNESS.verifier_key()] if quorum else []
    return cli.run("trust", "set", "--profile", name, "--ledger-key", verifier_key(cli.world),
                   *witnesses, "--quorum", str(quorum), "--yes").output


def _witnessed(cli: Cli) -> None:
    register_witness(cli.world)
    witnessed_checkpoint(cli.world)


def test_trust_set_shows_fingerprints_and_keeps_the_roots(cli: Cli, ex: Exchange) -> None:
    output = _trust(cli, "alice")
    assert "fingerprint" in output
    assert "quorum: 1 of 1" in output
    shown = cli.json("trust", "show", "--profile", "alice")
    assert shown["quorum"] == 1
    assert shown["ledger_key"] == verifier_key(cli.world)
    profile = cli.json("profile", "show", "--profile", "alice")
    assert profile["key_transparency"].startswith("on: ledger key and 1 of 1 witnesses")
    assert profile["ledger_key"] == verifier_key(cli.world)
    cli.profile_for("untrusting", ex.bob, trust=False)
    other = cli.json("profile", "show", "--profile", "untrusting")
    assert other["key_transparency"].startswith("off: no trust roots")


def test_trust_set_asks_before_trusting(cli: Cli, ex: Exchange) -> None:
    cli.profile_for("untrusting", ex.alice, trust=False)
    result = cli.run("trust", "set", "--profile", "untrusting", "--ledger-key",
                     verifier_key(cli.world), input_text="n\n", code=2)
    assert "not changed" in result.output
    cli.run("trust", "show", "--profile", "untrusting", code=2)


def test_a_sender_refuses_a_recipient_key_without_its_ledger_entry(
        cli: Cli, ex: Exchange, tmp_path: Path) -> None:
    _witnessed(cli)
    _trust(cli, "alice")
    rogue_key_row(cli.world, "bob", LiaisonKeys.generate(), retire=True)
    witnessed_checkpoint(cli.world)
    result = cli.run("send", "--profile", "alice", "--to", "bob", "--channel", "ch",
                     "--text", "x", "--evaluation", "b2", code=1)
    assert "not-in-ledger" in result.output


def test_an_honest_send_with_trust_roots_passes(cli: Cli, ex: Exchange) -> None:
    _witnessed(cli)
    _trust(cli, "alice")
    cli.json("send", "--profile", "alice", "--to", "bob", "--channel", "ch", "--text", "x",
             "--evaluation", "b2")


def test_quorum_zero_warns_once_per_command(cli: Cli, ex: Exchange) -> None:
    _witnessed(cli)
    _trust(cli, "alice", quorum=0)
    result = cli.run("login", "--profile", "alice")
    assert result.output.count("quorum 0") == 1


def test_keys_check_lists_the_liaisons_own_entries(cli: Cli, ex: Exchange) -> None:
    _witnessed(cli)
    _trust(cli, "alice")
    checked = cli.json("keys", "check", "--profile", "alice")
    assert [k["action"] for k in checked["keys"]] == ["liaison.enrol"]
    assert checked["keys"][0]["key_id"] == ex.alice.keys.public.key_id


def test_keys_check_keeps_its_key_log_scan_private(cli: Cli, ex: Exchange) -> None:
    _witnessed(cli)
    _trust(cli, "alice")
    cli.json("keys", "check", "--profile", "alice")
    scan = cli.home / "alice" / "key-log-scan.json"
    assert scan.stat().st_mode & 0o777 == 0o600
    kept = json.loads(scan.read_text())
    assert kept["liaison"] == ex.alice.id
    assert len(kept["own"]) == 1  # alice's enrolment, found by scanning every leaf
    assert kept["size"] >= 2  # every liaison's key entries were scanned, not only hers


def test_a_rogue_key_under_ones_name_is_reported_loudly(cli: Cli, ex: Exchange) -> None:
    _witnessed(cli)
    _trust(cli, "alice")
    rogue_rotation(cli.world, ex.alice, LiaisonKeys.generate(), retire=False)
    witnessed_checkpoint(cli.world)
    login = cli.run("login", "--profile", "alice")
    assert "WARNING" in login.output
    checked = cli.run("keys", "check", "--profile", "alice", code=1)
    assert "WARNING" in checked.output


def test_a_key_row_under_ones_name_without_an_entry_is_reported(cli: Cli, ex: Exchange) -> None:
    _witnessed(cli)
    _trust(cli, "alice")
    rogue_key_row(cli.world, "alice", LiaisonKeys.generate(), retire=False)
    checked = cli.run("keys", "check", "--profile", "alice", code=1)
    assert "with no ledger entry" in checked.output


def test_a_contacts_honest_rotation_moves_the_pin_and_says_so(cli: Cli, ex: Exchange) -> None:
    _witnessed(cli)
    _trust(cli, "alice")
    send = ("send", "--profile", "alice", "--to", "bob", "--channel", "ch", "--text", "x",
            "--evaluation", "b2")
    assert "pinned the key of bob, proven in the ledger" in cli.run(*send).output
    cli.run("keys", "rotate", "--profile", "bob", "--no-passphrase")
    witnessed_checkpoint(cli.world)
    moved = cli.run(*send)
    assert "bob rotated their key, proven in the witnessed ledger" in moved.output
    pins = cli.json("contacts", "list", "--profile", "alice")
    assert [p["how"] for p in pins["bob"]] == ["first use", "rotation"]
