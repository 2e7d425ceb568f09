"""Sending re-encrypts attachments as they upload: a file changed meanwhile is refused.

Sealing measures an attachment's ciphertext digest (signed in the header);
the upload encrypts the file again (``crypto.replay``). If the file changed
in between, the send must fail with a clear message before any byte of the
changed content leaves the machine, and store nothing for that attachment.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.transfer import rig
from client.errors import UsageError
from client.transfer import Outgoing, Progress, send_packet
from crypto import Classification, HandlingCode, PacketMeta

META = PacketMeta("bench", Classification.CONFIDENTIAL, HandlingCode.H0, "B2")


def _blobs(data_dir: Path) -> list[Path]:
    return sorted(p for p in (data_dir / "blobs").rglob("*") if p.is_file())


def test_attachment_changed_after_sealing_is_refused_and_not_stored(tmp_path: Path) -> None:
    attachment = tmp_path / "evidence.bin"
    attachment.write_bytes(bytes(range(256)) * 40_000)  # 10 MB: 10 chunks

    @contextlib.contextmanager
    def tamper_on_upload(label: str, total: int) -> Iterator[Progress]:
        if label == "uploading":  # sealed already: change one byte in chunk 5
            with attachment.open("r+b") as handle:
                handle.seek(5 * (1 << 20) + 17)
                handle.write(b"\xff")
        yield lambda _n: None

    with rig(tmp_path) as r, r.client("ana") as ana:
        before = _blobs(r.server.data_dir)
        with pytest.raises(UsageError, match="changed while it was being sent.*chunk 5"):
            send_packet(ana, r.keys["ana"], "ana",
                        Outgoing(["bruno"], META, io.BytesIO(b"note"), [attachment]),
                        workdir=tmp_path, progress=tamper_on_upload)
        deadline = time.monotonic() + 10
        while (any(p.name.startswith(".upload-") for p in _blobs(r.server.data_dir))
               and time.monotonic() < deadline):
            time.sleep(0.1)  # the server drops the broken upload's temporary file
        stored = _blobs(r.server.data_dir)
    # Nothing was stored: the manifest and the message would have gone inline with
    # the envelope, never sent; no partial upload of the attachment is left.
    assert stored == before, stored
    assert not list(tmp_path.glob("cadena-send-*")), "sealing left ciphertext behind"
