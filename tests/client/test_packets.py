"""``cadena send / inbox / sent / fetch / share / withdraw / thread / receipts`` on the real server.

The server runs in-process (the ``world`` of ``tests/app/conftest.py``, SQLite
and PostgreSQL); the commands and the SDK talk to it through its TestClient.
"""

from __future__ import annotations

import json
import os
import stat
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

from client.cli import app
from client.cli.common import CliDeps
from client.models import Token
from client.packets import file_digest
from crypto import StreamDigest
from tests.app.test_packets_support import Exchange
from tests.client.conftest import Cli, sdk_for
from tests.client.test_events import revoke_later


def _send(cli: Cli, tmp_path: Path, *extra: str) -> str:
    attachment = tmp_path / "ledger extract.csv"
    attachment.write_bytes(b"account,amount\n1,100\n" * 50)
    created = cli.json("send", "--profile", "alice", "--to", "bob", "--channel", "ch",
                       "--text", "see attached", "--attach", str(attachment),
                       "--evaluation", "b2", "--case", "CASE-1", *extra)
    return str(created["id"])


def test_sent_packet_is_fetched_verified_decrypted_and_receipted(
        cli: Cli, ex: Exchange, tmp_path: Path) -> None:
    packet = _send(cli, tmp_path)
    inbox = cli.json("inbox", "--profile", "bob")
    assert [p["id"] for p in inbox] == [packet]
    assert inbox[0]["evaluation"] == "B2"
    assert [p["id"] for p in cli.json("sent", "--profile", "alice")] == [packet]
    out = tmp_path / "got"
    fetched = cli.json("fetch", packet, "--profile", "bob", "--out", str(out))
    assert fetched["verified"] is True
    assert (out / "message.txt").read_bytes() == b"see attached"
    got = out / "attachments" / "ledger extract.csv"
    assert got.read_bytes() == (tmp_path / "ledger extract.csv").read_bytes()
    record = json.loads((out / "packet.json").read_text())
    assert record["packet_id"] == packet
    assert [e.action for e in ex.world.entries()][-1] == "packet.receipt"
    receipts = cli.json("receipts", packet, "--profile", "alice")
    assert [(r["recipient"], r["verified"]) for r in receipts] == [("bob", True)]
    again = cli.json("fetch", packet, "--profile", "bob", "--out", str(tmp_path / "again"))
    assert again["receipt_existed"] is True


def test_every_file_fetch_writes_is_private_whatever_the_umask(
        cli: Cli, ex: Exchange, tmp_path: Path) -> None:
    """Files 0600 and directories 0700: packet.json too, and a parent fetch creates."""
    packet = _send(cli, tmp_path)
    out = tmp_path / "cases" / "got"
    previous = os.umask(0o022)  # a usual desktop umask, which would leave 0644 and 0755
    try:
        cli.json("fetch", packet, "--profile", "bob", "--out", str(out))
    finally:
        os.umask(previous)
    written = [out.parent, out, *out.rglob("*")]
    assert {p.name for p in written} >= {"packet.json", "message.txt", "attachments"}
    modes = {p.relative_to(tmp_path).as_posix(): stat.S_IMODE(p.stat().st_mode)
             for p in written}
    assert modes == {name: 0o700 if (tmp_path / name).is_dir() else 0o600 for name in modes}


def test_tables_show_whole_packet_ids_that_fetch_accepts(
        cli: Cli, ex: Exchange, tmp_path: Path) -> None:
    """At 120 columns, at 60, and piped (no COLUMNS): the id is never cut short."""
    packet = _send(cli, tmp_path, "--urgency", "urgent", "--legal-basis",
                   "Chapultepec Consensus, art. 4, a basis long enough to need wrapping")
    for columns in ("120", "60", ""):
        env = {"COLUMNS": columns}
        for box, profile in (("inbox", "bob"), ("sent", "alice"), ("thread", "alice")):
            extra = [packet] if box == "thread" else []
            shown = cli.run(box, *extra, "--profile", profile, env=env).stdout
            # (a thread also names its root in its title: the row must show it whole too)
            assert shown.count(packet) == (2 if box == "thread" else 1), (columns, box, shown)
            assert "…" not in shown.split(packet)[0].splitlines()[-1]
    shown_id = next(word for line in cli.run("inbox", "--profile", "bob").stdout.splitlines()
                    for word in line.replace("│", " ").split() if word.startswith(packet[:8]))
    cli.json("fetch", shown_id, "--profile", "bob", "--out", str(tmp_path / "as shown"))


def test_piped_output_is_not_wrapped_at_80_columns(cli: Cli, ex: Exchange,
                                                   tmp_path: Path) -> None:
    packet = _send(cli, tmp_path, "--case", "CASE-" + "7" * 60)
    shown = cli.run("sent", "--profile", "alice", env={"COLUMNS": ""}).stdout
    row = next(line for line in shown.splitlines() if packet in line)
    assert "CASE-" + "7" * 60 in row


def test_message_from_standard_input(cli: Cli, ex: Exchange, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["send", "--profile", "alice", "--to", "bob", "--channel", "ch", "--evaluation",
              "A1", "--json"], input=b"from stdin\n",
        obj=CliDeps(http=ex.world.client, home=cli.home),
        env={"CADENA_PASSPHRASE": "", "CADENA_PROFILE": ""})
    assert result.exit_code == 0, result.output
    packet = json.loads(result.stdout)["id"]
    cli.run("fetch", packet, "--profile", "bob", "--out", str(tmp_path / "o"))
    assert (tmp_path / "o" / "message.txt").read_bytes() == b"from stdin\n"


def test_reply_defaults_to_the_requests_channel_sender_and_classification(
        cli: Cli, ex: Exchange, tmp_path: Path) -> None:
    due = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S")
    request = _send(cli, tmp_path, "--classification", "secret", "--urgency", "urgent",
                    "--due", due)
    reply = cli.json("send", "--profile", "bob", "--reply-to", request, "--text", "answer",
                     "--evaluation", "A1")
    assert (reply["channel_id"], reply["recipients"], reply["classification"]) == \
        ("ch", ["alice"], "SECRET")
    thread = cli.json("thread", reply["id"], "--profile", "alice")
    assert thread["root"] == request
    assert [p["id"] for p in thread["packets"]] == [request, reply["id"]]
    assert "↳" in cli.run("thread", request, "--profile", "bob").stdout


def test_withdrawn_packet_is_refused_to_its_recipient(cli: Cli, ex: Exchange,
                                                      tmp_path: Path) -> None:
    packet = _send(cli, tmp_path)
    done = cli.json("withdraw", packet, "--reason", "sent in error", "--profile", "alice")
    assert done["status"] == "withdrawn"
    refused = cli.run("fetch", packet, "--profile", "bob", "--out", str(tmp_path / "x"), code=3)
    assert "recorded in the ledger" in refused.stderr
    assert not (tmp_path / "x").exists()
    assert cli.json("inbox", "--profile", "bob", "--status", "withdrawn")[0]["id"] == packet


def test_h0_packet_is_shared_onward_without_approval(cli: Cli, ex: Exchange,
                                                     tmp_path: Path) -> None:
    packet = _send(cli, tmp_path)
    cli.run("fetch", packet, "--profile", "bob", "--out", str(tmp_path / "bob"))
    shared = cli.json("share", packet, "--to", "carol", "--profile", "bob")
    assert shared["step"] == "shared"
    cli.run("fetch", packet, "--profile", "carol", "--out", str(tmp_path / "carol"))
    assert (tmp_path / "carol" / "message.txt").read_bytes() == b"see attached"


def test_h2_packet_needs_the_originators_approval(cli: Cli, ex: Exchange,
                                                  tmp_path: Path) -> None:
    packet = _send(cli, tmp_path, "--handling", "H2")
    assert cli.json("share", packet, "--to", "carol", "--profile", "bob")["step"] == "requested"
    assert cli.json("share", packet, "--to", "carol", "--profile", "bob")["step"] == "pending"
    requests = cli.json("share-requests", packet, "--profile", "alice")
    assert [(r["recipient_id"], r["status"]) for r in requests] == [("carol", "pending")]
    cli.run("approve-share", packet, "--profile", "alice")
    assert cli.json("share", packet, "--to", "carol", "--profile", "bob")["step"] == "shared"
    cli.run("fetch", packet, "--profile", "carol", "--out", str(tmp_path / "carol"))


def _bobs_listings(ex: Exchange) -> list[int]:
    return [e.index for e in ex.world.entries() if e.action == "packet.list"
            and e.actor is not None and e.actor.liaison == ex.bob.id]


def test_inbox_follow_prints_a_packet_sent_after_the_listing(
        cli: Cli, ex: Exchange, tmp_path: Path) -> None:
    ex.sent()
    sent: list[str] = []
    listed = len(_bobs_listings(ex))

    def send_once_listed() -> None:
        # After the listing, not after a fixed time: a slow start of the CLI
        # (a loaded machine) would otherwise list the second packet too.
        deadline = time.monotonic() + 60
        while len(_bobs_listings(ex)) == listed and time.monotonic() < deadline:
            time.sleep(0.05)
        sent.append(ex.sent()[1])

    revoke_later(ex.world, ex.bob, 1.5, first=send_once_listed)
    result = cli.run("inbox", "--profile", "bob", "--follow", "--polls", "1", "--json")
    assert "as packets arrive" in result.stderr
    decoder, text, values = json.JSONDecoder(), result.stdout.strip(), []
    while text:
        value, end = decoder.raw_decode(text)
        values.append(value)
        text = text[end:].strip()
    listing, *later = values
    assert len(listing) == 1
    assert [item["id"] for item in later] == sent


def test_usage_errors_exit_2(cli: Cli, ex: Exchange, tmp_path: Path) -> None:
    missing = cli.run("send", "--profile", "alice", "--to", "bob", "--channel", "ch", "--text",
                      "x", code=2)
    assert "evaluation" in missing.output
    cli.run("send", "--profile", "alice", "--to", "bob", "--channel", "ch", "--text", "x",
            "--evaluation", "Z9", code=2)
    packet = _send(cli, tmp_path)
    (tmp_path / "taken").mkdir()
    taken = cli.run("fetch", packet, "--profile", "bob", "--out", str(tmp_path / "taken"), code=2)
    assert "exists already" in taken.stderr
    originator = cli.run("fetch", packet, "--profile", "alice", "--out", str(tmp_path / "a"),
                         code=2)
    assert "no key for you" in originator.stderr


def test_every_packet_command_has_help(cli: Cli) -> None:
    for command in ("send", "inbox", "sent", "fetch", "share", "approve-share",
                    "share-requests", "withdraw", "thread", "receipts", "demo"):
        assert "--help" in cli.run(command, "--help").stdout


def test_streamed_upload_is_sent_again_after_a_401(ex: Exchange, tmp_path: Path) -> None:
    blob = tmp_path / "blob"
    blob.write_bytes(b"ciphertext" * 1000)
    digest = file_digest(blob)
    with sdk_for(ex.world, ex.alice) as client:
        client.session._token = Token(token="not-a-token",  # noqa: S106
                                      expires_at=datetime.now(UTC) + timedelta(hours=1),
                                      clearance_expires_at=None)
        stored = client.packets.upload_blob(blob, digest)
    assert (stored.created, stored.size) == (True, 10000)


def test_download_resumes_a_partial_file(cli: Cli, ex: Exchange, tmp_path: Path) -> None:
    packet = _send(cli, tmp_path)
    with sdk_for(ex.world, ex.bob) as client:
        read = client.packets.retrieve(packet)
        stream = read.streams[2]
        expected = StreamDigest(stream.length, stream.sha256)
        whole = tmp_path / "whole.ct"
        client.packets.download(packet, 2, whole, expected)
        dest = tmp_path / "resumed.ct"
        Path(str(dest) + ".part").write_bytes(whole.read_bytes()[:500])
        assert client.packets.download(packet, 2, dest, expected) == expected
    assert dest.read_bytes() == whole.read_bytes()
    ranges = [e.details.get("range") for e in ex.world.entries()
              if e.action == "packet.download"]
    assert any(r for r in ranges), ranges
    assert file_digest(dest) == expected
