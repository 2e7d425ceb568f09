"""The background file writer: every byte, in order, and no error lost."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamio import outfile
from streamio.outfile import BackgroundWriter, WritebackPacer


@settings(max_examples=30, deadline=None)
@given(chunks=st.lists(st.binary(max_size=3000), max_size=20), depth=st.integers(1, 3))
def test_everything_written_arrives_in_order(tmp_path_factory: pytest.TempPathFactory,
                                             chunks: list[bytes], depth: int) -> None:
    path = tmp_path_factory.mktemp("out") / "file"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    buffer = bytearray(3000)
    with BackgroundWriter(fd, depth) as writer:
        for chunk in chunks:  # the caller reuses its buffer, as decrypt_stream does
            buffer[:len(chunk)] = chunk
            assert writer.write(memoryview(buffer)[:len(chunk)]) == len(chunk)
    os.close(fd)
    assert path.read_bytes() == b"".join(chunks)


def test_write_error_is_raised_not_lost(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    fd = os.open(tmp_path / "file", os.O_WRONLY | os.O_CREAT)
    writer = BackgroundWriter(fd)
    writer.write(b"data")
    with pytest.raises(OSError, match="No space"):
        writer.close()
    with pytest.raises(OSError, match="No space"):
        writer.write(b"more")
    os.close(fd)


def _fail_while_writing(writer: BackgroundWriter) -> None:
    with writer:
        writer.write(b"partial")
        raise RuntimeError("decryption failed")


def test_failing_caller_stops_the_thread(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "file", os.O_WRONLY | os.O_CREAT)
    writer = BackgroundWriter(fd)
    with pytest.raises(RuntimeError, match="decryption failed"):
        _fail_while_writing(writer)
    assert not writer._thread.is_alive()
    with pytest.raises(ValueError, match="closed"):
        writer.write(b"late")
    os.close(fd)


def test_pacer_starts_write_back_every_step(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, ...]] = []

    def record(*args: int) -> int:
        calls.append(args)
        return 0

    monkeypatch.setattr(outfile, "_START_WRITEBACK", record)
    pacer = WritebackPacer(7, step=100)
    for count in (60, 60, 30, 100, 5):
        pacer.wrote(count)
    assert calls == [(7, 0, 120, 2), (7, 120, 130, 2)]


def test_real_write_back_hint_is_harmless(tmp_path: Path) -> None:
    path = tmp_path / "file"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    pacer = WritebackPacer(fd, step=4096)
    os.write(fd, bytes(10_000))
    pacer.wrote(10_000)
    os.fsync(fd)
    os.close(fd)
    assert path.stat().st_size == 10_000
