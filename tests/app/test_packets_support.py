"""Helpers for the packet tests (no tests here): channels, sealing with real crypto, uploads.

Every packet in these tests is sealed with ``crypto.seal_packet`` by a real
liaison key set, uploaded stream by stream to ``PUT /v1/blobs/{sha256}`` and
submitted as the base64 of ``Envelope.to_bytes()``.
"""

from __future__ import annotations

import base64
import hashlib
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import Executable, func, select

from app.ledger.engine import make_engine
from app.ledger.refusal import public_reason
from app.models.ledger import LEDGER_TABLES
from app.models.refusal import RefusalDetail
from crypto import (
    Classification,
    HandlingCode,
    OpenedEnvelope,
    PacketHeader,
    PacketMeta,
    SealedPacket,
    open_envelope,
    seal_packet,
)
from ledger import Entry, verify_refusal_detail
from tests.app.conftest import Person, World

PROBLEM = "https://cadena.example/problems/"


def sha256(data: bytes) -> str:
    """Lowercase hex SHA-256."""
    return hashlib.sha256(data).hexdigest()


def execute(world: World, statement: Executable) -> None:
    """Run a statement directly against the world's database (to age or break things)."""
    engine = make_engine(world.settings.resolved_database_url())
    try:
        with engine.begin() as conn:
            conn.execute(statement)
    finally:
        engine.dispose()


def last_entry(world: World) -> Entry:
    """The newest ledger entry."""
    return world.last_entry()


def ledger_size(world: World) -> int:
    """How many entries the ledger holds."""
    table = LEDGER_TABLES.entries
    engine = make_engine(world.settings.resolved_database_url())
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())
    finally:
        engine.dispose()


def make_channel(world: World, channel_id: str, members: list[Person],
                 min_clearance: str = "RESTRICTED") -> None:
    """A multilateral channel with ``members``, created by the coordinator."""
    response = world.client.post("/v1/channels", headers=world.coordinator.auth, json={
        "id": channel_id, "name": f"Channel {channel_id}", "kind": "multilateral",
        "min_clearance": min_clearance, "members": [m.id for m in members]})
    assert response.status_code == 201, response.text


def upload(world: World, person: Person, data: bytes, digest: str | None = None) -> httpx.Response:
    """PUT one ciphertext blob."""
    response: httpx.Response = world.client.put(f"/v1/blobs/{digest or sha256(data)}",
                                                content=data, headers=person.auth)
    return response


def seal(sender: Person, recipients: list[Person], channel: str, *,
         classification: str = "CONFIDENTIAL", handling: str = "H0",
         message: bytes = b"meet at the border post at dawn",
         attachments: dict[str, bytes] | None = None, chunk_size: int = 64,
         **meta: Any) -> SealedPacket:
    """Seal a real packet from ``sender`` to ``recipients``."""
    packet_meta = PacketMeta(channel, Classification(classification), HandlingCode(handling),
                             "B2", **meta)
    return seal_packet(sender.keys, sender.id, {r.id: r.keys.public for r in recipients},
                       packet_meta, message, attachments or {"evidence.txt": b"exhibit A"},
                       chunk_size=chunk_size)


def envelope_b64(sealed: SealedPacket) -> str:
    """The submission body value."""
    return base64.b64encode(sealed.envelope.to_bytes()).decode()


def submit(world: World, sender: Person, sealed: SealedPacket,
           upload_streams: bool = True) -> httpx.Response:
    """Upload the streams (as the sender) and submit the envelope."""
    if upload_streams:
        for stream in sealed.streams:
            assert upload(world, sender, stream).status_code in (200, 201)
    response: httpx.Response = world.client.post("/v1/packets", headers=sender.auth,
                                                 json={"envelope": envelope_b64(sealed)})
    return response


def packet_id(sealed: SealedPacket) -> str:
    """The packet id the sealed header carries."""
    return PacketHeader.from_bytes(sealed.envelope.header).packet_id


def opened_by(sealed: SealedPacket, sender: Person, recipient: Person) -> OpenedEnvelope:
    """The envelope as ``recipient`` opens it (for receipts and shares)."""
    return open_envelope(sealed.envelope, sender.keys.public, recipient.id, recipient.keys,
                         io.BytesIO(sealed.streams[0]))


def signed_body(signed: bytes, signature: bytes) -> dict[str, str]:
    """The JSON body of a receipt or key share."""
    return {"signed": base64.b64encode(signed).decode(),
            "signature": base64.b64encode(signature).decode()}


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is an RFC 9457 problem of ``code`` with ``status``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"] == PROBLEM + code, body
    return body


def assert_denied(world: World, response: httpx.Response, status: int, code: str, action: str,
                  reason: str, *, detail: str | None = None) -> None:
    """A refusal: the problem, and exactly one denied entry naming the action and reason.

    ``reason`` is the entry's reason code (``app.ledger.refusal.Reason``), which the
    problem body shows as ``reason`` (in its public form); ``detail`` is text
    that the auditor-only detail of the entry holds (checked against the
    entry's digest).
    """
    body = assert_problem(response, status, code)
    entry = last_entry(world)
    assert (entry.action, entry.outcome) == (action, "denied")
    assert reason in (entry.reason or ""), entry.reason
    assert body["reason"] == public_reason(entry.reason or "")
    assert body["ledger_index"] == entry.index
    if detail is not None:
        assert detail in refusal_detail(world, entry.index)


def refusal_detail(world: World, index: int) -> str:
    """The auditor-only detail of refusal ``index``, checked against the entry's digest."""
    engine = make_engine(world.settings.resolved_database_url())
    try:
        with engine.connect() as conn:
            row = conn.execute(select(RefusalDetail.salt, RefusalDetail.detail)
                               .where(RefusalDetail.ledger_index == index)).one()
    finally:
        engine.dispose()
    entry = next(e for e in world.entries() if e.index == index)
    verify_refusal_detail(entry, bytes(row.salt), row.detail)
    return str(row.detail)


def assert_granted(world: World, body: dict[str, Any], action: str) -> None:
    """A granted action: its ledger entry is the newest and the body names it."""
    entry = last_entry(world)
    assert (entry.action, entry.outcome) == (action, "granted")
    assert body["ledger"] == {"index": entry.index, "leaf_hash": entry.leaf_hash.hex()}


@dataclass
class Exchange:
    """A channel ``ch`` with sender alice (CO), recipient bob (MX) and bystander carol (MX)."""

    world: World
    alice: Person
    bob: Person
    carol: Person
    channel: str = "ch"

    def seal(self, recipients: list[Person] | None = None, **kw: Any) -> SealedPacket:
        """A packet from alice (to bob unless told otherwise)."""
        return seal(self.alice, recipients or [self.bob], self.channel, **kw)

    def sent(self, recipients: list[Person] | None = None, **kw: Any) -> tuple[SealedPacket, str]:
        """A packet sealed and submitted by alice; returns it and its id."""
        sealed = self.seal(recipients, **kw)
        response = submit(self.world, self.alice, sealed)
        assert response.status_code == 201, response.text
        return sealed, str(response.json()["id"])


def exchange(world: World, min_clearance: str = "RESTRICTED") -> Exchange:
    """Enrol MX, alice, bob and carol (SECRET clearances) in one channel."""
    world.state("MX")
    alice = world.liaison("alice", "CO")
    bob = world.liaison("bob", "MX")
    carol = world.liaison("carol", "MX")
    make_channel(world, "ch", [alice, bob, carol], min_clearance)
    return Exchange(world, alice, bob, carol)


def past(seconds: int = 60) -> datetime:
    """A moment ``seconds`` ago."""
    return datetime.now(UTC) - timedelta(seconds=seconds)
