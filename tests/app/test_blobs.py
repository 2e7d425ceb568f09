"""The blob store: content-addressed, atomic, size-limited, never partial; HTTP upload."""

from __future__ import annotations

import asyncio
import errno
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app import blobs
from app.blobs import (
    BlobDigestMismatch,
    BlobStore,
    ByteRange,
    ContentTooLarge,
    InsufficientStorage,
    RangeNotSatisfiable,
    parse_range,
    receive_blob,
)
from tests.app.conftest import World
from tests.app.test_packets_support import (
    assert_denied,
    assert_granted,
    assert_problem,
    last_entry,
    ledger_size,
    sha256,
    upload,
)


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_blob_is_stored_under_its_digest(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    data = os.urandom(5000)
    digest = sha256(data)
    writer = store.writer(digest, 10_000)
    for i in range(0, len(data), 1000):
        writer.write(data[i:i + 1000])
    stored = writer.commit()
    assert (stored.size, stored.created) == (5000, True)
    path = tmp_path / "blobs" / digest[:2] / digest[2:4] / digest
    assert _files(tmp_path) == [path]
    assert path.read_bytes() == data
    assert b"".join(store.read(digest)) == data
    again = store.writer(digest, 10_000)
    again.write(data)
    assert again.commit().created is False
    assert _files(tmp_path) == [path]


def test_digest_mismatch_leaves_nothing_behind(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    writer = store.writer(sha256(b"expected"), 100)
    writer.write(b"something else")
    with pytest.raises(BlobDigestMismatch):
        writer.commit()
    assert _files(tmp_path) == []


def test_size_limit_is_enforced_while_streaming(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    writer = store.writer(sha256(b"x" * 11), 10)
    writer.write(b"x" * 6)
    with pytest.raises(ContentTooLarge):
        writer.write(b"x" * 5)
    assert _files(tmp_path) == []


def test_full_disk_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = BlobStore(tmp_path)
    writer = store.writer(sha256(b"data"), 100)

    def full(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(InsufficientStorage):
        writer.write(b"data")
    monkeypatch.undo()
    assert _files(tmp_path) == []


@given(size=st.integers(0, 50), first=st.integers(0, 60) | st.none(),
       last=st.integers(0, 60) | st.none())
def test_range_header_selects_exactly_what_rfc_9110_says(size: int, first: int | None,
                                                         last: int | None) -> None:
    data = bytes(range(size))
    header = f"bytes={'' if first is None else first}-{'' if last is None else last}"
    if first is None and last is None:
        assert parse_range(header, size) is None
        return
    if first is None:
        assert last is not None
        expected = data[max(0, size - last):] if last and size else None
    elif last is not None and last < first:
        assert parse_range(header, size) is None
        return
    else:
        expected = data[first:None if last is None else last + 1] if first < size else None
    if expected is None:
        with pytest.raises(RangeNotSatisfiable):
            parse_range(header, size)
        return
    chosen = parse_range(header, size)
    assert chosen is not None
    assert data[chosen.first:chosen.last + 1] == expected
    assert chosen.content_range == f"bytes {chosen.first}-{chosen.last}/{size}"


def test_unsupported_range_forms_mean_the_whole_stream() -> None:
    for header in (None, "", "items=0-1", "bytes=0-1,3-4", "bytes=x-y", "bytes=-"):
        assert parse_range(header, 10) is None


def test_upload_is_logged_and_idempotent(world: World) -> None:
    alice = world.liaison("alice", "CO")
    data = os.urandom(300_000)
    first = upload(world, alice, data)
    assert first.status_code == 201, first.text
    assert (first.json()["size"], first.json()["created"]) == (300_000, True)
    assert_granted(world, first.json(), "blob.upload")
    assert last_entry(world).subject == {"type": "blob", "id": sha256(data)}
    second = upload(world, alice, data)
    assert second.status_code == 200
    assert second.json()["created"] is False
    assert_granted(world, second.json(), "blob.upload")


def test_upload_with_wrong_digest_keeps_nothing(world: World) -> None:
    alice = world.liaison("alice", "CO")
    size = ledger_size(world)
    response = upload(world, alice, b"ciphertext", digest=sha256(b"other"))
    assert_problem(response, 422, "digest-mismatch")
    assert ledger_size(world) == size
    assert _files(world.settings.data_dir / "blobs") == []


def test_oversized_upload_is_refused_declared_or_streamed(world: World) -> None:
    alice = world.liaison("alice", "CO")
    world.settings.max_upload_bytes = 1000
    declared = upload(world, alice, b"x" * 1001)
    assert_problem(declared, 413, "too-large")
    streamed = world.client.put(f"/v1/blobs/{sha256(b'y' * 3000)}", headers=alice.auth,
                                content=iter([b"y" * 600] * 5))
    assert_problem(streamed, 413, "too-large")
    assert _files(world.settings.data_dir / "blobs") == []


def test_full_disk_upload_is_507_and_keeps_nothing(world: World,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    alice = world.liaison("alice", "CO")
    real_write = os.write
    blobs = str(world.settings.data_dir / "blobs")

    def full(fd: int, data: bytes) -> int:
        if os.readlink(f"/proc/self/fd/{fd}").startswith(blobs):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full)
    response = upload(world, alice, b"ciphertext")
    assert_problem(response, 507, "insufficient-storage")
    assert _files(world.settings.data_dir / "blobs") == []


def test_only_authenticated_prosecutors_upload(world: World) -> None:
    auditor = world.liaison("audit", "CO", role="auditor")
    anonymous = world.client.put(f"/v1/blobs/{sha256(b'a')}", content=b"a")
    assert_denied(world, anonymous, 401, "unauthenticated", "blob.upload", "no-token")
    refused = upload(world, auditor, b"a")
    assert_denied(world, refused, 403, "forbidden", "blob.upload", "wrong-role")
    assert _files(world.settings.data_dir / "blobs") == []


def _body(chunks: list[bytes], fail_after: int | None = None) -> AsyncIterator[bytes]:
    async def gen() -> AsyncIterator[bytes]:
        for i, chunk in enumerate(chunks):
            if i == fail_after:
                raise ConnectionResetError("the client went away")
            yield chunk
    return gen()


@given(sizes=st.lists(st.integers(0, 700), max_size=30))
def test_pipelined_receive_stores_exactly_the_body(sizes: list[int]) -> None:
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as patch:
        patch.setattr(blobs, "WRITE_BATCH", 1000)  # several batches, one in flight
        store = BlobStore(Path(tmp))
        chunks = [os.urandom(n) for n in sizes]
        data = b"".join(chunks)
        stored = asyncio.run(receive_blob(_body(chunks), store.writer(sha256(data), 1 << 20)))
        assert (stored.sha256, stored.size, stored.created) == (sha256(data), len(data), True)
        assert _files(Path(tmp)) == [store.path(sha256(data))]
        assert store.path(sha256(data)).read_bytes() == data


def test_broken_pipelined_receive_leaves_nothing(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blobs, "WRITE_BATCH", 1000)
    store = BlobStore(tmp_path)
    chunks = [os.urandom(600) for _ in range(10)]
    writer = store.writer(sha256(b"".join(chunks)), 1 << 20)
    with pytest.raises(ConnectionResetError):
        asyncio.run(receive_blob(_body(chunks, fail_after=7), writer))
    assert _files(tmp_path) == []


def test_pipelined_receive_enforces_the_size_limit(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blobs, "WRITE_BATCH", 1000)
    store = BlobStore(tmp_path)
    chunks = [b"z" * 600] * 10
    with pytest.raises(ContentTooLarge):
        asyncio.run(receive_blob(_body(chunks), store.writer(sha256(b"z" * 6000), 2500)))
    assert _files(tmp_path) == []


async def _streamed(store: BlobStore, digest: str, byte_range: ByteRange | None,
                    stop_after: int | None = None) -> bytes:
    chunks = store.stream(digest, byte_range)
    got = []
    async for chunk in chunks:
        got.append(chunk)
        if len(got) == stop_after:
            break
    await chunks.aclose()
    return b"".join(got)


@given(first=st.integers(0, 5000), length=st.integers(1, 5000))
def test_served_range_is_exactly_the_stored_bytes(first: int, length: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as patch:
        patch.setattr(blobs, "SEND_CHUNK", 700)
        store = BlobStore(Path(tmp))
        data = bytes(i % 253 for i in range(5000))
        writer = store.writer(sha256(data), 10_000)
        writer.write(data)
        writer.commit()
        assert asyncio.run(_streamed(store, sha256(data), None)) == data
        if first < len(data):
            chosen = ByteRange(first, min(first + length, len(data)) - 1, len(data))
            got = asyncio.run(_streamed(store, sha256(data), chosen))
            assert got == data[chosen.first:chosen.last + 1]


def test_serving_stopped_early_closes_the_file(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blobs, "SEND_CHUNK", 100)
    store = BlobStore(tmp_path)
    data = os.urandom(1000)
    writer = store.writer(sha256(data), 10_000)
    writer.write(data)
    writer.commit()
    opened_before = len(os.listdir("/proc/self/fd"))
    assert asyncio.run(_streamed(store, sha256(data), None, stop_after=2)) == data[:200]
    assert len(os.listdir("/proc/self/fd")) == opened_before
