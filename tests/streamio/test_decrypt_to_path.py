"""Decrypting into a file: atomically, and nothing left behind when a chunk is tampered with."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from crypto import TamperedChunk, open_envelope, seal_stream
from streamio import decrypt_to_path
from tests.crypto.conftest import CHUNK, META, NOW, RECIPIENTS, SENDER, publics, seal


def test_streaming_seal_and_decrypt_to_files(tmp_path: Path) -> None:
    payload = (tmp_path / "evidence.bin")
    payload.write_bytes(bytes(range(256)) * 40)
    outs = [io.BytesIO() for _ in range(3)]
    with payload.open("rb") as reader:
        envelope = seal_stream(SENDER, "sender", publics(["r0"]), META, io.BytesIO(b"msg"),
                               [("evidence.bin", reader)], outs, chunk_size=CHUNK, now=NOW)
    opened = open_envelope(envelope, SENDER.public, "r0", RECIPIENTS["r0"],
                           io.BytesIO(outs[0].getvalue()))
    target = tmp_path / "out.bin"
    digest = decrypt_to_path(opened, 2, io.BytesIO(outs[2].getvalue()), target)
    assert target.read_bytes() == payload.read_bytes()
    assert digest.sha256 == opened.statement.attachments[0].sha256


def test_decrypt_to_path_leaves_nothing_behind_on_tamper(tmp_path: Path) -> None:
    sealed = seal(attachments=[("a", b"x" * 500)])
    opened = open_envelope(sealed.envelope, SENDER.public, "r0", RECIPIENTS["r0"],
                           io.BytesIO(sealed.streams[0]))
    bad = bytearray(sealed.streams[2])
    bad[-1] ^= 1
    with pytest.raises(TamperedChunk):
        decrypt_to_path(opened, 2, io.BytesIO(bytes(bad)), tmp_path / "out")
    assert list(tmp_path.iterdir()) == []
