"""Submitting a small packet in one request: its streams inline, with the envelope.

Inline streams are kept in their stream rows (no blob file) and served from
there, whole or by byte range, exactly as uploaded blobs are.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from app.models.packet import Packet
from app.packets.schemas import MAX_INLINE_STREAM_BYTES
from crypto import SealedPacket
from tests.app.conftest import Person, World
from tests.app.test_atomicity import _count
from tests.app.test_packets_support import (
    Exchange,
    assert_granted,
    assert_problem,
    envelope_b64,
    exchange,
    last_entry,
    ledger_size,
    upload,
)


def _inline(sealed: SealedPacket, indexes: list[int]) -> list[dict[str, Any]]:
    return [{"index": i, "ciphertext": base64.b64encode(sealed.streams[i]).decode()}
            for i in indexes]


def _post(world: World, sender: Person, sealed: SealedPacket,
          inline: list[dict[str, Any]]) -> httpx.Response:
    response: httpx.Response = world.client.post(
        "/v1/packets", headers=sender.auth,
        json={"envelope": envelope_b64(sealed), "inline_streams": inline})
    return response


def _delivered(ex: Exchange, packet: str, sealed: SealedPacket) -> list[bytes]:
    got = [ex.world.client.get(f"/v1/packets/{packet}/streams/{i}", headers=ex.bob.auth)
           for i in range(len(sealed.streams))]
    assert [r.status_code for r in got] == [200] * len(sealed.streams)
    return [r.content for r in got]


def test_a_packet_with_every_stream_inline_needs_no_upload(world: World) -> None:
    ex = exchange(world)
    sealed = ex.seal()
    size, blobs = ledger_size(world), _blob_files(world)
    response = _post(world, ex.alice, sealed, _inline(sealed, [0, 1, 2]))
    assert response.status_code == 201, response.text
    assert_granted(world, response.json(), "packet.submit")
    assert ledger_size(world) == size + 1  # one request, one entry: no blob.upload
    assert last_entry(world).details["inline_streams"] == [0, 1, 2]
    assert _blob_files(world) == blobs  # kept in the stream rows, committed with the packet
    assert _delivered(ex, response.json()["id"], sealed) == list(sealed.streams)


def test_an_inline_stream_is_served_by_byte_range(world: World) -> None:
    ex = exchange(world)
    sealed = ex.seal(message=bytes(range(256)) * 8)
    packet = _post(world, ex.alice, sealed, _inline(sealed, [0, 1, 2])).json()["id"]
    whole = sealed.streams[1]
    part = world.client.get(f"/v1/packets/{packet}/streams/1",
                            headers={**ex.bob.auth, "Range": "bytes=100-199"})
    assert part.status_code == 206, part.text
    assert part.content == whole[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(whole)}"
    assert last_entry(world).details["range"] == "100-199"
    tail = world.client.get(f"/v1/packets/{packet}/streams/1",
                            headers={**ex.bob.auth, "Range": "bytes=-10"})
    assert (tail.status_code, tail.content) == (206, whole[-10:])
    beyond = world.client.get(f"/v1/packets/{packet}/streams/1",
                              headers={**ex.bob.auth, "Range": f"bytes={len(whole)}-"})
    assert beyond.status_code == 416


def test_a_stream_too_large_to_go_inline_is_refused(world: World) -> None:
    ex = exchange(world)
    sealed = ex.seal(attachments={"scan.tif": bytes(MAX_INLINE_STREAM_BYTES + 1)})
    size = ledger_size(world)
    response = _post(world, ex.alice, sealed, _inline(sealed, [0, 1, 2]))
    assert response.status_code == 422, response.text
    assert ledger_size(world) == size
    assert _count(world, Packet) == 0


def test_inline_and_uploaded_streams_mix(world: World) -> None:
    ex = exchange(world)
    sealed = ex.seal(attachments={"a.txt": b"first", "b.txt": b"second"})
    for index in (2, 3):
        assert upload(world, ex.alice, sealed.streams[index]).status_code == 201
    response = _post(world, ex.alice, sealed, _inline(sealed, [1, 0]))
    assert response.status_code == 201, response.text
    assert last_entry(world).details["inline_streams"] == [0, 1]
    assert _delivered(ex, response.json()["id"], sealed) == list(sealed.streams)


def test_an_inline_stream_already_stored_is_accepted(world: World) -> None:
    ex = exchange(world)
    sealed = ex.seal()
    assert upload(world, ex.alice, sealed.streams[0]).status_code == 201
    response = _post(world, ex.alice, sealed, _inline(sealed, [0, 1, 2]))
    assert response.status_code == 201, response.text
    assert _delivered(ex, response.json()["id"], sealed) == list(sealed.streams)


def _refused(ex: Exchange, sealed: SealedPacket, inline: list[dict[str, Any]]) -> None:
    """422 ``inline-stream-mismatch``; no entry, no packet, no blob stored."""
    world = ex.world
    size, blobs = ledger_size(world), _blob_files(world)
    assert_problem(_post(world, ex.alice, sealed, inline), 422, "inline-stream-mismatch")
    assert (ledger_size(world), _blob_files(world)) == (size, blobs)
    assert _count(world, Packet) == 0


def _blob_files(world: World) -> set[str]:
    root = world.settings.data_dir / "blobs"
    return {p.name for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def test_an_inline_stream_the_header_does_not_sign_changes_nothing(world: World) -> None:
    ex = exchange(world)
    sealed = ex.seal()
    other = ex.seal(message=b"another message")
    wrong = [{"index": 1, "ciphertext": base64.b64encode(other.streams[1]).decode()}]
    _refused(ex, sealed, _inline(sealed, [0]) + wrong)
    _refused(ex, sealed, _inline(sealed, [0, 0]))  # twice
    _refused(ex, sealed, [{"index": 3, "ciphertext": "AAAA"}])  # the header lists 3 streams
    _refused(ex, sealed, [{"index": 0, "ciphertext": "AAA"}])  # not base64: padding


def test_inline_streams_are_bounded_by_the_json_limit(world: World) -> None:
    ex = exchange(world)
    sealed = ex.seal(attachments={"big.bin": bytes(4096)})
    world.settings.max_json_bytes = 4096
    assert_problem(_post(world, ex.alice, sealed, _inline(sealed, [0, 1, 2])), 413, "too-large")


def test_a_refused_submission_writes_no_inline_stream(world: World) -> None:
    ex = exchange(world)
    sealed = ex.seal(recipients=[ex.bob])
    blobs = _blob_files(world)
    response = _post(world, ex.carol, sealed, _inline(sealed, [0, 1, 2]))  # not the signer
    assert response.status_code == 422, response.text
    assert _blob_files(world) == blobs


def test_any_split_between_inline_and_uploaded_streams_delivers_the_packet(
        world: World) -> None:
    ex = exchange(world)

    @settings(max_examples=15)
    @given(data=st.data(), attachments=st.integers(0, 3), corrupt=st.booleans())
    def check(data: st.DataObject, attachments: int, corrupt: bool) -> None:
        files = {f"f{i}.bin": data.draw(st.binary(max_size=300)) for i in range(attachments)}
        sealed = ex.seal(attachments=files or None)
        count = len(sealed.streams)
        inline = data.draw(st.lists(st.integers(0, count - 1), unique=True))
        for index in sorted(set(range(count)) - set(inline)):
            assert upload(world, ex.alice, sealed.streams[index]).status_code in (200, 201)
        body = _inline(sealed, inline)
        if corrupt and body:
            victim = data.draw(st.sampled_from(body))
            raw = bytearray(base64.b64decode(victim["ciphertext"]))
            raw[data.draw(st.integers(0, len(raw) - 1))] ^= 1
            victim["ciphertext"] = base64.b64encode(bytes(raw)).decode()
        size = ledger_size(world)
        response = _post(world, ex.alice, sealed, body)
        if corrupt and body:
            assert_problem(response, 422, "inline-stream-mismatch")
            assert ledger_size(world) == size
            return
        assert response.status_code == 201, response.text
        assert ledger_size(world) == size + 1
        packet = response.json()["id"]
        assert _delivered(ex, packet, sealed) == list(sealed.streams)
        index = data.draw(st.integers(0, count - 1))
        whole = sealed.streams[index]
        first = data.draw(st.integers(0, len(whole) - 1))
        last = data.draw(st.integers(first, len(whole) - 1))
        part = world.client.get(f"/v1/packets/{packet}/streams/{index}",
                                headers={**ex.bob.auth, "Range": f"bytes={first}-{last}"})
        assert (part.status_code, part.content) == (206, whole[first:last + 1])

    check()
