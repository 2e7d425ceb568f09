"""Replaying a sealed stream: the same ciphertext again, or nothing that differs."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crypto import (
    Envelope,
    InvalidArgument,
    SealedPacket,
    SourceChanged,
    StreamReplay,
    open_packet,
    replay_stream,
    seal_streams,
)
from tests.crypto.conftest import CHUNK, META, NOW, RECIPIENTS, SENDER, det_random, publics, seal

EDGE_SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 7]


def _sealed_with_replay(message: bytes, attachment: bytes
                        ) -> tuple[Envelope, list[bytes], StreamReplay]:
    """Seal like ``conftest.seal`` but keep attachment 0 as a replay; staged outputs too."""
    outputs: list[io.BytesIO | None] = [io.BytesIO(), io.BytesIO(), None]
    sealed = seal_streams(SENDER, "sender", publics(["r0"]), META, io.BytesIO(message),
                          [("a.bin", io.BytesIO(attachment))], outputs, chunk_size=CHUNK,
                          now=NOW, random=det_random("packet"))
    staged = [out.getvalue() for out in outputs if out is not None]
    assert list(sealed.replays) == [2]
    return sealed.envelope, staged, sealed.replays[2]


@given(size=st.sampled_from(EDGE_SIZES) | st.integers(0, 6 * CHUNK))
def test_replay_yields_exactly_the_sealed_ciphertext(size: int) -> None:
    data = bytes(i % 251 for i in range(size))
    envelope, staged, replay = _sealed_with_replay(b"msg", data)
    reference = seal(b"msg", [("a.bin", data)])
    assert envelope == reference.envelope
    again = b"".join(replay_stream(replay, io.BytesIO(data)))
    assert [*staged, again] == list(reference.streams)
    assert replay.ciphertext.length == len(again)
    assert replay.chunks == max(1, -(-size // CHUNK))


def test_replayed_packet_opens() -> None:
    data = b"evidence " * 40
    envelope, staged, replay = _sealed_with_replay(b"msg", data)
    streams = (*staged, b"".join(replay_stream(replay, io.BytesIO(data))))
    opened = open_packet(SealedPacket(envelope, streams), SENDER.public, "r0", RECIPIENTS["r0"])
    assert opened.attachments == {"a.bin": data}


def test_changed_chunk_is_refused_before_it_is_yielded() -> None:
    data = bytes(range(200)) * 2  # 400 bytes: 7 chunks of 64
    _, _, replay = _sealed_with_replay(b"msg", data)
    reference = seal(b"msg", [("a.bin", data)]).streams[2]
    changed = bytearray(data)
    changed[3 * CHUNK + 5] ^= 1
    chunks = replay_stream(replay, io.BytesIO(bytes(changed)))
    got = [next(chunks) for _ in range(3)]
    assert b"".join(got) == reference[:3 * (CHUNK + 16)]
    with pytest.raises(SourceChanged, match="chunk 3"):
        next(chunks)


def test_shorter_source_is_refused() -> None:
    data = bytes(5 * CHUNK)
    _, _, replay = _sealed_with_replay(b"msg", data)
    with pytest.raises(SourceChanged, match="ends inside chunk 4"):
        list(replay_stream(replay, io.BytesIO(data[:-1])))


def test_replay_with_tags_of_another_length_is_refused() -> None:
    _, _, replay = _sealed_with_replay(b"msg", bytes(3 * CHUNK))
    broken = StreamReplay(replay.key, replay.chunk_size, replay.ciphertext, replay.tags[:16])
    with pytest.raises(SourceChanged, match="tags"):
        list(replay_stream(broken, io.BytesIO(bytes(3 * CHUNK))))


def test_manifest_needs_an_output() -> None:
    with pytest.raises(InvalidArgument, match="manifest"):
        seal_streams(SENDER, "sender", publics(["r0"]), META, io.BytesIO(b"m"), [],
                     [None, io.BytesIO()], chunk_size=CHUNK)
