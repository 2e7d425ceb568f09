"""Invariant 1: the server never holds plaintext, nor an unsalted digest of it.

A packet whose message, attachment and attachment name carry a random marker
goes through every action (submit, list, retrieve, download, receipt, share
request and approval, share, thread, withdrawal). Then every column of every
table — as bytes, as text, and base64-decoded wherever it looks like base64 —
every file under the test's directory (database files, blobs, keys) and
everything the service logged are searched for the marker and for the
plaintext SHA-256 digests (hex and raw): none may appear.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from app.ledger.engine import make_engine
from app.models import Base
from crypto import make_receipt, share_content_key
from tests.app.conftest import World
from tests.app.test_packets_support import exchange, opened_by, signed_body

_B64_TOKEN = re.compile(rb"[A-Za-z0-9+/_-]{16,}={0,2}")


def _decodings(blob: bytes) -> Iterator[bytes]:
    yield blob
    for token in _B64_TOKEN.findall(blob):
        padded = token + b"=" * (-len(token) % 4)
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                yield decode(padded)
            except (binascii.Error, ValueError):
                continue


def _as_bytes(value: object) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return str(value).encode()


def _database_values(world: World) -> Iterator[tuple[str, bytes]]:
    engine = make_engine(world.settings.resolved_database_url())
    try:
        with engine.connect() as conn:
            for table in Base.metadata.sorted_tables:
                for row in conn.execute(select(table)):
                    for column, value in zip(table.columns, row, strict=True):
                        if value is not None:
                            yield f"{table.name}.{column.name}", _as_bytes(value)
    finally:
        engine.dispose()


def _files(root: Path) -> Iterator[tuple[str, bytes]]:
    for path in root.rglob("*"):
        if path.is_file():
            yield str(path), path.read_bytes()


def _exercise(world: World, message: bytes, name: str, attachment: bytes) -> None:
    ex = exchange(world)
    sealed, pid = ex.sent(message=message, attachments={name: attachment})
    client, bob = world.client, ex.bob.auth
    assert client.get("/v1/packets", headers=bob).status_code == 200
    assert client.get(f"/v1/packets/{pid}", headers=bob).status_code == 200
    for index in range(len(sealed.streams)):
        assert client.get(f"/v1/packets/{pid}/streams/{index}", headers=bob).status_code == 200
    opened = opened_by(sealed, ex.alice, ex.bob)
    receipt = make_receipt(opened, "bob", ex.bob.keys)
    assert client.post(f"/v1/packets/{pid}/receipts", headers=bob,
                       json=signed_body(receipt.receipt, receipt.signature)).status_code == 201
    rid = client.post(f"/v1/packets/{pid}/share-requests", headers=bob,
                      json={"recipient_id": "carol"}).json()["id"]
    assert client.post(f"/v1/packets/{pid}/share-requests/{rid}/approve",
                       headers=ex.alice.auth).status_code == 200
    share = share_content_key(opened, ex.bob.keys, "bob", "carol", ex.carol.keys.public)
    assert client.post(f"/v1/packets/{pid}/shares", headers=bob,
                       json=signed_body(share.share, share.signature)).status_code == 201
    assert client.get(f"/v1/packets/{pid}/thread", headers=ex.carol.auth).status_code == 200
    assert client.post(f"/v1/packets/{pid}/withdraw", headers=ex.alice.auth,
                       json={"reason": "case closed"}).status_code == 200


def test_no_table_file_or_log_holds_plaintext_or_its_digest(
        world: World, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    marker = os.urandom(16).hex()
    message = f"the informant is {marker}".encode()
    name = f"{marker}.txt"
    attachment = f"ledger of payments {marker}".encode() * 50
    _exercise(world, message, name, attachment)
    needles = [marker.encode(), name.encode()]
    for plain in (message, attachment):
        digest = hashlib.sha256(plain)
        needles += [digest.hexdigest().encode(), digest.digest()]
    planted = b'{"x":"' + base64.b64encode(message) + b'"}'
    assert any(marker.encode() in d for d in _decodings(planted)), "the scanner must see base64"
    captured = capfd.readouterr()
    haystacks = [*_database_values(world), *_files(tmp_path),
                 ("logs", (captured.out + captured.err).encode())]
    assert len(haystacks) > 50
    for where, blob in haystacks:
        for decoded in _decodings(blob):
            for needle in needles:
                assert needle not in decoded, f"plaintext trace in {where}"
