"""The desk's outgoing attachments: encrypted as they arrive, read back only if untouched.

Real crypto, real files: what is on disk is never the plaintext, reads back
exactly, any changed byte makes the read fail (never wrong bytes), an
oversized body leaves nothing behind, and files are the liaison's alone.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anyio
import anyio.to_thread
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client.desk.spool import BodyReader, Spool, Spooled, TooLarge
from client.errors import UsageError
from crypto import DEFAULT_CHUNK_SIZE

CHUNK = DEFAULT_CHUNK_SIZE
SIZES = [0, 1, 4095, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 17]


def _pieces(data: bytes, cuts: int, seed: int) -> Iterator[bytes]:
    rng = random.Random(seed)
    points = sorted(rng.randrange(len(data) + 1) for _ in range(cuts))
    start = 0
    for point in [*points, len(data)]:
        if point > start:
            yield data[start:point]
            start = point


def _receive(spool: Spool, data: bytes, *, cuts: int = 3, seed: int = 0) -> Spooled:
    pieces = _pieces(data, cuts, seed)

    async def next_chunk() -> bytes:
        return next(pieces, b"")

    async def main() -> Spooled:
        reader = BodyReader(next_chunk, spool.limit)
        return await anyio.to_thread.run_sync(spool.receive, "session", "exhibit.bin", reader)
    # An event loop of its own, in a thread: Playwright's sync API keeps one in this one.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(anyio.run, main).result()


def _read_all(spooled: Spooled) -> bytes:
    with spooled.open() as reader:
        parts = []
        while piece := reader.read(CHUNK // 3):
            parts.append(piece)
        return b"".join(parts)


@settings(deadline=None)
@given(size=st.sampled_from(SIZES), cuts=st.integers(0, 6), seed=st.integers(0, 2**16))
def test_an_attachment_is_encrypted_on_disk_and_reads_back_exactly(
        tmp_path_factory: pytest.TempPathFactory, size: int, cuts: int, seed: int) -> None:
    spool = Spool(tmp_path_factory.mktemp("profile") / "desk-outgoing", limit=1 << 30)
    data = random.Random(seed).randbytes(size)
    spooled = _receive(spool, data, cuts=cuts, seed=seed)
    on_disk = spooled.path.read_bytes()
    assert spooled.plaintext.length == size
    if size >= 32:
        assert data[:32] not in on_disk
    assert len(on_disk) == spooled.ciphertext.length > size  # every chunk carries its tag
    assert _read_all(spooled) == data
    assert spooled.path.stat().st_mode & 0o777 == 0o600
    assert spool.directory.stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize("offset", [0, CHUNK // 2, CHUNK + 16])
def test_a_changed_byte_on_disk_makes_the_read_fail(tmp_path: Path, offset: int) -> None:
    spool = Spool(tmp_path / "desk-outgoing", limit=1 << 30)
    spooled = _receive(spool, random.Random(1).randbytes(CHUNK + 100))
    raw = bytearray(spooled.path.read_bytes())
    raw[offset] ^= 0x01
    spooled.path.write_bytes(bytes(raw))
    with pytest.raises(UsageError, match="cannot be read back"):
        _read_all(spooled)


def test_a_body_over_the_limit_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "desk-outgoing", limit=1000)
    with pytest.raises(TooLarge):
        _receive(spool, b"x" * 1001)
    assert list(spool.directory.iterdir()) == []


def test_another_session_cannot_use_or_remove_an_attachment(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "desk-outgoing", limit=1 << 20)
    spooled = _receive(spool, b"evidence")
    with pytest.raises(UsageError):
        spool.get("another session", spooled.id)
    spool.discard("another session", spooled.id)
    assert spooled.path.exists()
    spool.discard("session", spooled.id)
    assert not spooled.path.exists()
