"""Helpers for certificate tests (no tests here): a packet with a full history, issuing."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from app.ledger.checkpointer import Checkpointer
from app.ledger.key import load_note_signer
from crypto import SealedPacket, SignedReceipt, make_receipt, share_content_key
from custody import CERTIFICATE_TYPE, seal_key
from ledger import NoteVerifier
from tests.app.conftest import Person, World, sign_checkpoint_now
from tests.app.test_packets_support import Exchange, exchange, opened_by, signed_body

COURT = "Juzgado Tercero Penal de Bogotá"
PURPOSE = "juicio oral, causa 2026-0042"
EVIDENCE = b"exhibit A: ledger of payments"


@dataclass
class History:
    """A packet alice sent to bob, shared on to carol, with receipts and a refusal."""

    world: World
    ex: Exchange
    sealed: SealedPacket
    packet_id: str
    bob_receipt: SignedReceipt

    def issue(self, by: Person | None = None, court: str = COURT,
              purpose: str = PURPOSE) -> httpx.Response:
        """POST a certificate request (as bob unless told otherwise)."""
        who = by or self.ex.bob
        response: httpx.Response = self.world.client.post(
            f"/v1/packets/{self.packet_id}/certificates", headers=who.auth,
            json={"issued_to": court, "purpose": purpose})
        return response

    def certificate(self, by: Person | None = None) -> bytes:
        """A certificate issued and collected (no witness quorum: any checkpoint covering it)."""
        response = self.issue(by)
        assert response.status_code == 202, response.text
        sign_checkpoint_now(self.world)  # what the checkpointer does on its interval
        return collect(self, str(response.json()["id"]), by)

    def seal_key(self) -> NoteVerifier:
        """The seal key the server publishes."""
        return seal_key(self.world.client.get("/v1/certificates/key").text)

    def statement(self) -> tuple[bytes, bytes]:
        """The inner statement and its signature, as bob holds them after opening."""
        opened = opened_by(self.sealed, self.ex.alice, self.ex.bob)
        return opened.statement_bytes, opened.statement_signature


def collect(h: History, certificate_id: str, by: Person | None = None) -> bytes:
    """``GET /v1/certificates/{id}``: the sealed bundle, which must be ready."""
    response = h.world.client.get(f"/v1/certificates/{certificate_id}",
                                  headers=(by or h.ex.bob).auth)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == CERTIFICATE_TYPE
    return bytes(response.content)


@contextmanager
def checkpointing(world: World, interval: float = 0.05) -> Iterator[None]:
    """The service's checkpointer on a short interval (the fixture's is an hour)."""
    signer = load_note_signer(world.settings.resolved_ledger_key_path(),
                              world.settings.ledger_origin)
    sessions = world.client.app.state.sessions  # type: ignore[attr-defined]
    checkpointer = Checkpointer(sessions, signer, world.settings.ledger_origin, interval)
    checkpointer.start()
    try:
        yield
    finally:
        checkpointer.stop()


def _ok(response: httpx.Response) -> None:
    assert response.status_code in (200, 201, 206), response.text


def history(world: World, handling: str = "H0", share: bool = True) -> History:
    """Ten entries about one packet: submit, retrievals, downloads, receipts, a share..."""
    ex = exchange(world)
    sealed, pid = ex.sent(handling=handling, attachments={"evidence.txt": EVIDENCE},
                          legal_basis="Treaty on mutual legal assistance, art. 7",
                          case_reference="CO-MX-2026-0042")
    client, alice, bob, carol = world.client, ex.alice, ex.bob, ex.carol
    _ok(client.get(f"/v1/packets/{pid}", headers=bob.auth))
    _ok(client.get(f"/v1/packets/{pid}/streams/1", headers=bob.auth))
    _ok(client.get(f"/v1/packets/{pid}/streams/2", headers={**bob.auth, "Range": "bytes=0-9"}))
    receipt = make_receipt(opened_by(sealed, alice, bob), bob.id, bob.keys)
    _ok(client.post(f"/v1/packets/{pid}/receipts", headers=bob.auth,
                    json=signed_body(receipt.receipt, receipt.signature)))
    assert client.get(f"/v1/packets/{pid}", headers=carol.auth).status_code == 404  # refused
    if share:
        signed = share_content_key(opened_by(sealed, alice, bob), bob.keys, bob.id, carol.id,
                                   carol.keys.public)
        _ok(client.post(f"/v1/packets/{pid}/shares", headers=bob.auth,
                        json=signed_body(signed.share, signed.signature)))
        _ok(client.get(f"/v1/packets/{pid}", headers=carol.auth))
    _ok(client.get(f"/v1/packets/{pid}/receipts", headers=alice.auth))
    return History(world, ex, sealed, pid, receipt)


def sha256(data: bytes) -> str:
    """Lowercase hex SHA-256."""
    return hashlib.sha256(data).hexdigest()


def b64(data: bytes) -> str:
    """Standard base64 text."""
    return base64.b64encode(data).decode()
