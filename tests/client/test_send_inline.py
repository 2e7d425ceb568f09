"""A small packet is sent in one request: manifest and message inline with the envelope."""

from __future__ import annotations

import io
from pathlib import Path

from client.transfer import INLINE_BYTES, Outgoing, SentPacket, send_packet
from crypto import Classification, HandlingCode, PacketMeta
from tests.app.test_packets_support import Exchange
from tests.client.conftest import sdk_for

META = PacketMeta("ch", Classification.CONFIDENTIAL, HandlingCode.H0, "B2")


def _send(ex: Exchange, message: bytes, attachments: list[Path]) -> SentPacket:
    alice = sdk_for(ex.world, ex.alice)
    return send_packet(alice, ex.alice.keys, "alice",
                       Outgoing(["bob"], META, io.BytesIO(message), attachments,
                                message_size=len(message)))


def _actions(ex: Exchange, since: int) -> list[str]:
    """The uploads and submissions granted since entry ``since`` (logins, look-ups left out)."""
    return [e.action for e in ex.world.entries()[since:]
            if e.outcome == "granted" and e.action in ("blob.upload", "packet.submit")]


def test_a_short_message_is_one_submission_and_no_upload(ex: Exchange) -> None:
    since = len(ex.world.entries())
    sent = _send(ex, b"the shipment moved to the northern port", [])
    assert sent.upload_entries == []
    assert _actions(ex, since) == ["packet.submit"]
    assert ex.world.last_entry().details["inline_streams"] == [0, 1]
    bob = sdk_for(ex.world, ex.bob)
    assert [s.length for s in bob.packets.retrieve(sent.created.id).streams] == [
        s.length for s in sent.header.streams]


def test_attachments_are_uploaded_and_the_message_still_goes_inline(
        ex: Exchange, tmp_path: Path) -> None:
    evidence = tmp_path / "ledger.csv"
    evidence.write_bytes(b"date,amount\n" * 100)
    since = len(ex.world.entries())
    sent = _send(ex, b"see the attached ledger", [evidence])
    assert len(sent.upload_entries) == 1
    assert _actions(ex, since) == ["blob.upload", "packet.submit"]
    assert ex.world.last_entry().details["inline_streams"] == [0, 1]


def test_a_long_message_is_uploaded(ex: Exchange) -> None:
    since = len(ex.world.entries())
    sent = _send(ex, bytes(INLINE_BYTES + 1), [])
    assert len(sent.upload_entries) == 2
    assert _actions(ex, since) == ["blob.upload", "blob.upload", "packet.submit"]
    assert "inline_streams" not in ex.world.last_entry().details


def test_a_server_with_a_smaller_body_limit_gets_the_streams_uploaded(ex: Exchange) -> None:
    ex.world.settings.max_json_bytes = 64 * 1024  # the envelope fits; the message inline not
    since = len(ex.world.entries())
    sent = _send(ex, bytes(100_000), [])
    assert len(sent.upload_entries) == 2
    assert _actions(ex, since) == ["blob.upload", "blob.upload", "packet.submit"]
