"""Tampering: any change to a sealed packet fails closed with the specific error."""

from __future__ import annotations

import io
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crypto import (
    BadSignature,
    BadWrappedKey,
    DigestMismatch,
    Envelope,
    SealedPacket,
    TamperedChunk,
    TruncatedStream,
    UnknownVersion,
    open_envelope,
    open_packet,
    seal_packet,
    sign,
)
from crypto.signing import PACKET_HEADER_TYPE
from tests.crypto.conftest import CHUNK, META, NOW, RECIPIENTS, SENDER, det_random, publics, seal

FULL = CHUNK + 16
PACKET = seal(message=b"m" * (3 * CHUNK + 5),
              attachments=[("a.pdf", bytes(range(256))), ("b.pdf", bytes(range(255, -1, -1)))],
              recipients=("r0", "r1"))
STREAMS = len(PACKET.streams)


def open_r0(packet: SealedPacket) -> None:
    open_packet(packet, SENDER.public, "r0", RECIPIENTS["r0"])


def with_stream(index: int, data: bytes) -> SealedPacket:
    streams = list(PACKET.streams)
    streams[index] = data
    return replace(PACKET, streams=tuple(streams))


def chunks(data: bytes) -> list[bytes]:
    return [data[i:i + FULL] for i in range(0, len(data), FULL)]


def flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def test_the_untouched_packet_opens() -> None:
    open_r0(PACKET)


@given(st.data())
def test_flipping_any_header_bit_breaks_the_signature(data: st.DataObject) -> None:
    bit = data.draw(st.integers(0, 8 * len(PACKET.envelope.header) - 1))
    envelope = replace(PACKET.envelope, header=flip(PACKET.envelope.header, bit))
    with pytest.raises(BadSignature):
        open_r0(replace(PACKET, envelope=envelope))


@given(st.integers(0, 8 * 64 - 1))
def test_flipping_any_signature_bit_is_refused(bit: int) -> None:
    envelope = replace(PACKET.envelope, signature=flip(PACKET.envelope.signature, bit))
    with pytest.raises(BadSignature):
        open_r0(replace(PACKET, envelope=envelope))


@given(st.integers(0, 8 * 81 - 1))
def test_flipping_any_wrapped_key_bit_fails_to_unwrap(bit: int) -> None:
    wrapped = dict(PACKET.envelope.wrapped_keys)
    wrapped["r0"] = flip(wrapped["r0"], bit)
    expected = UnknownVersion if bit < 8 else BadWrappedKey
    with pytest.raises(expected):
        open_r0(replace(PACKET, envelope=replace(PACKET.envelope, wrapped_keys=wrapped)))


def test_a_wrapped_key_moved_to_another_recipient_does_not_open() -> None:
    wrapped = dict(PACKET.envelope.wrapped_keys)
    wrapped["r0"] = wrapped["r1"]
    with pytest.raises(BadWrappedKey):
        open_r0(replace(PACKET, envelope=replace(PACKET.envelope, wrapped_keys=wrapped)))


def test_a_wrapped_key_moved_to_another_packet_does_not_open() -> None:
    other = seal(recipients=("r0", "r1"), seed="other")
    envelope = replace(PACKET.envelope, wrapped_keys=other.envelope.wrapped_keys)
    with pytest.raises(BadWrappedKey):
        open_r0(replace(PACKET, envelope=envelope))


@given(st.data())
def test_tampered_chunk_fails_closed(data: st.DataObject) -> None:
    index = data.draw(st.integers(0, STREAMS - 1))
    bit = data.draw(st.integers(0, 8 * len(PACKET.streams[index]) - 1))
    with pytest.raises(TamperedChunk):
        open_r0(with_stream(index, flip(PACKET.streams[index], bit)))


@given(st.data())
def test_truncated_stream_fails_closed(data: st.DataObject) -> None:
    index = data.draw(st.integers(0, STREAMS - 1))
    cut = data.draw(st.integers(0, len(PACKET.streams[index]) - 1))
    with pytest.raises(TruncatedStream):
        open_r0(with_stream(index, PACKET.streams[index][:cut]))


@given(st.data())
def test_dropped_chunk_fails_closed(data: st.DataObject) -> None:
    parts = chunks(PACKET.streams[1])
    drop = data.draw(st.integers(0, len(parts) - 1))
    # The next chunk lands in the dropped one's place and fails its tag, unless the
    # stream runs out first (it is shorter than signed): either way, fail closed.
    expected = TruncatedStream if drop == len(parts) - 1 else (TamperedChunk, TruncatedStream)
    with pytest.raises(expected):
        open_r0(with_stream(1, b"".join(parts[:drop] + parts[drop + 1:])))


@given(st.data())
def test_duplicated_chunk_fails_closed(data: st.DataObject) -> None:
    parts = chunks(PACKET.streams[1])
    dup = data.draw(st.integers(0, len(parts) - 1))
    at = data.draw(st.integers(0, len(parts)))
    with pytest.raises(TamperedChunk):
        open_r0(with_stream(1, b"".join(parts[:at] + [parts[dup]] + parts[at:])))


@given(st.data())
def test_reordered_chunks_fail_closed(data: st.DataObject) -> None:
    parts = chunks(PACKET.streams[3])
    i, j = data.draw(st.lists(st.integers(0, len(parts) - 1), min_size=2, max_size=2,
                              unique=True))
    parts[i], parts[j] = parts[j], parts[i]
    with pytest.raises(TamperedChunk):
        open_r0(with_stream(3, b"".join(parts)))


@given(st.data())
def test_chunk_spliced_from_another_stream_of_the_packet_fails(data: st.DataObject) -> None:
    a, b = chunks(PACKET.streams[2]), chunks(PACKET.streams[3])
    at = data.draw(st.integers(0, len(a) - 1))
    a[at] = b[at]
    with pytest.raises(TamperedChunk):
        open_r0(with_stream(2, b"".join(a)))


def test_swapped_streams_fail_closed() -> None:
    streams = list(PACKET.streams)
    streams[2], streams[3] = streams[3], streams[2]
    with pytest.raises(TamperedChunk):
        open_r0(replace(PACKET, streams=tuple(streams)))


@given(st.data())
def test_chunk_spliced_from_a_packet_with_the_same_content_key_fails(
        data: st.DataObject) -> None:
    # Same injected randomness: the same content key, only the packet id differs.
    twin = seal_packet(SENDER, "sender", publics(("r0", "r1")), META, b"n" * (3 * CHUNK + 5),
                       [("a.pdf", bytes(256)), ("b.pdf", bytes(256))], chunk_size=CHUNK,
                       now=NOW, random=det_random("packet"),
                       packet_id="01959507-0000-7000-8000-000000000001")
    index = data.draw(st.integers(1, STREAMS - 1))
    ours, theirs = chunks(PACKET.streams[index]), chunks(twin.streams[index])
    at = data.draw(st.integers(0, min(len(ours), len(theirs)) - 1))
    ours[at] = theirs[at]
    with pytest.raises(TamperedChunk):
        open_r0(with_stream(index, b"".join(ours)))


def test_signed_digest_that_differs_from_the_ciphertext_is_a_digest_mismatch() -> None:
    # Only the sender can produce this: a header whose digest is wrong for valid chunks.
    from crypto import PacketHeader, StreamDigest

    header = PacketHeader.from_bytes(PACKET.envelope.header)
    streams = list(header.streams)
    streams[1] = StreamDigest(streams[1].length, "0" * 64)
    forged = replace(header, streams=tuple(streams)).to_bytes()
    envelope = Envelope(forged, sign(SENDER.signing_key, PACKET_HEADER_TYPE, forged),
                        PACKET.envelope.wrapped_keys)
    with pytest.raises(DigestMismatch):
        open_r0(replace(PACKET, envelope=envelope))


def test_a_header_signed_by_someone_else_is_refused() -> None:
    with pytest.raises(BadSignature):
        open_packet(PACKET, RECIPIENTS["r1"].public, "r0", RECIPIENTS["r0"])


def test_manifest_decryption_checks_before_any_content() -> None:
    with pytest.raises(TamperedChunk):
        open_envelope(PACKET.envelope, SENDER.public, "r0", RECIPIENTS["r0"],
                      io.BytesIO(flip(PACKET.streams[0], 9)))
