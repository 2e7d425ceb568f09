"""Receipts and onward sharing: client-signed objects verified, stored and logged."""

from __future__ import annotations

import base64
import io

from crypto import (
    Envelope,
    LiaisonKeys,
    SealedPacket,
    decrypt_content,
    make_receipt,
    open_envelope,
    share_content_key,
    verify_key_share,
)
from tests.app.conftest import World
from tests.app.test_packets_support import (
    Exchange,
    assert_denied,
    assert_granted,
    assert_problem,
    exchange,
    last_entry,
    ledger_size,
    opened_by,
    signed_body,
)


def _receipt(ex: Exchange, sent: tuple[SealedPacket, str],
             keys: LiaisonKeys | None = None) -> dict[str, str]:
    opened = opened_by(sent[0], ex.alice, ex.bob)
    signed = make_receipt(opened, "bob", keys or ex.bob.keys)
    return signed_body(signed.receipt, signed.signature)


def test_signed_receipt_is_stored_logged_and_shown_to_the_originator(world: World) -> None:
    ex = exchange(world)
    sent = ex.sent()
    body = _receipt(ex, sent)
    response = world.client.post(f"/v1/packets/{sent[1]}/receipts", headers=ex.bob.auth,
                                 json=body)
    assert response.status_code == 201, response.text
    assert_granted(world, response.json(), "packet.receipt")
    assert last_entry(world).signature == body["signature"]
    listed = world.client.get(f"/v1/packets/{sent[1]}/receipts", headers=ex.alice.auth)
    assert listed.status_code == 200
    assert [r["receipt"] for r in listed.json()["receipts"]] == [body["signed"]]
    assert_granted(world, listed.json(), "packet.receipts")
    again = world.client.post(f"/v1/packets/{sent[1]}/receipts", headers=ex.bob.auth, json=body)
    assert_denied(world, again, 409, "packet-conflict", "packet.receipt", "receipt-already-given")
    peek = world.client.get(f"/v1/packets/{sent[1]}/receipts", headers=ex.bob.auth)
    assert_denied(world, peek, 403, "originator-only", "packet.receipts", "originator-only")


def test_receipt_signed_by_another_key_is_refused_and_logged(world: World) -> None:
    ex = exchange(world)
    sent = ex.sent()
    forged = _receipt(ex, sent, LiaisonKeys.generate())
    response = world.client.post(f"/v1/packets/{sent[1]}/receipts", headers=ex.bob.auth,
                                 json=forged)
    assert_denied(world, response, 422, "bad-signature", "packet.receipt", "bad-signature")
    size = ledger_size(world)
    garbled = world.client.post(f"/v1/packets/{sent[1]}/receipts", headers=ex.bob.auth,
                                json={**forged, "signed": "AAAAA"})
    assert_problem(garbled, 422, "invalid-request")
    assert ledger_size(world) == size


def test_receipt_for_another_packet_is_refused_and_logged(world: World) -> None:
    ex = exchange(world)
    first, second = ex.sent(), ex.sent()
    response = world.client.post(f"/v1/packets/{second[1]}/receipts", headers=ex.bob.auth,
                                 json=_receipt(ex, first))
    assert_denied(world, response, 422, "object-mismatch", "packet.receipt", "object-mismatch")


def test_only_recipients_give_receipts(world: World) -> None:
    ex = exchange(world)
    sent = ex.sent()
    response = world.client.post(f"/v1/packets/{sent[1]}/receipts", headers=ex.alice.auth,
                                 json=_receipt(ex, sent))
    assert_denied(world, response, 403, "not-a-recipient", "packet.receipt", "not-a-recipient")


def test_h2_share_needs_the_originators_recorded_approval(world: World) -> None:
    ex = exchange(world)
    sealed, pid = ex.sent(handling="H2")
    share = share_content_key(opened_by(sealed, ex.alice, ex.bob), ex.bob.keys, "bob", "carol",
                              ex.carol.keys.public)
    body = signed_body(share.share, share.signature)
    early = world.client.post(f"/v1/packets/{pid}/shares", headers=ex.bob.auth, json=body)
    assert_denied(world, early, 403, "share-not-approved", "packet.share",
                  "share-not-approved", detail="no approval for bob to share with carol")
    asked = world.client.post(f"/v1/packets/{pid}/share-requests", headers=ex.bob.auth,
                              json={"recipient_id": "carol"})
    assert asked.status_code == 201, asked.text
    assert_granted(world, asked.json(), "packet.share_request")
    rid = asked.json()["id"]
    by_bob = world.client.post(f"/v1/packets/{pid}/share-requests/{rid}/approve",
                               headers=ex.bob.auth)
    assert_denied(world, by_bob, 403, "originator-only", "packet.share_approve",
                  "originator-only")
    approved = world.client.post(f"/v1/packets/{pid}/share-requests/{rid}/approve",
                                 headers=ex.alice.auth)
    assert approved.status_code == 200
    assert approved.json()["status"] == "approved"
    assert_granted(world, approved.json(), "packet.share_approve")
    shared = world.client.post(f"/v1/packets/{pid}/shares", headers=ex.bob.auth, json=body)
    assert shared.status_code == 201, shared.text
    assert shared.json()["approval"] == rid
    assert_granted(world, shared.json(), "packet.share")
    assert last_entry(world).signature == body["signature"]
    _carol_opens(world, ex, pid)


def test_h2_approval_binds_the_holder_who_asked(world: World) -> None:
    ex = exchange(world)
    erin = world.liaison("erin", "MX")
    world.client.post("/v1/channels/ch/members", headers=world.coordinator.auth,
                      json={"liaison_id": "erin"}).raise_for_status()
    sealed, pid = ex.sent([ex.bob, erin], handling="H2")
    rid = world.client.post(f"/v1/packets/{pid}/share-requests", headers=ex.bob.auth,
                            json={"recipient_id": "carol"}).json()["id"]
    url = f"/v1/packets/{pid}/share-requests/{rid}/approve"
    assert world.client.post(url, headers=ex.alice.auth).status_code == 200
    by_erin = share_content_key(opened_by(sealed, ex.alice, erin), erin.keys, "erin", "carol",
                                ex.carol.keys.public)
    borrowed = world.client.post(f"/v1/packets/{pid}/shares", headers=erin.auth,
                                 json=signed_body(by_erin.share, by_erin.signature))
    assert_denied(world, borrowed, 403, "share-not-approved", "packet.share",
                  "share-not-approved", detail="no approval for erin to share with carol")
    own = world.client.post(f"/v1/packets/{pid}/share-requests", headers=erin.auth,
                            json={"recipient_id": "carol"})
    assert own.status_code == 201, own.text  # erin's own request, not bob's
    by_bob = share_content_key(opened_by(sealed, ex.alice, ex.bob), ex.bob.keys, "bob", "carol",
                               ex.carol.keys.public)
    shared = world.client.post(f"/v1/packets/{pid}/shares", headers=ex.bob.auth,
                               json=signed_body(by_bob.share, by_bob.signature))
    assert shared.status_code == 201, shared.text
    assert shared.json()["approval"] == rid


def _carol_opens(world: World, ex: Exchange, pid: str) -> None:
    got = world.client.get(f"/v1/packets/{pid}", headers=ex.carol.auth).json()
    assert got["key_share"]["sharer_id"] == "bob"
    verified = verify_key_share(base64.b64decode(got["key_share"]["share"]),
                                base64.b64decode(got["key_share"]["signature"]),
                                ex.bob.keys.public)
    manifest = world.client.get(f"/v1/packets/{pid}/streams/0", headers=ex.carol.auth).content
    message = world.client.get(f"/v1/packets/{pid}/streams/1", headers=ex.carol.auth).content
    envelope = Envelope(base64.b64decode(got["header"]), base64.b64decode(got["signature"]),
                        {"bob": bytes(81)})
    opened = open_envelope(envelope, ex.alice.keys.public, "carol", ex.carol.keys,
                           io.BytesIO(manifest), share=verified)
    out = io.BytesIO()
    decrypt_content(opened, 1, io.BytesIO(message), out)
    assert out.getvalue() == b"meet at the border post at dawn"


def test_h0_share_needs_no_approval_but_is_logged(world: World) -> None:
    ex = exchange(world)
    sealed, pid = ex.sent(handling="H0")
    share = share_content_key(opened_by(sealed, ex.alice, ex.bob), ex.bob.keys, "bob", "carol",
                              ex.carol.keys.public)
    response = world.client.post(f"/v1/packets/{pid}/shares", headers=ex.bob.auth,
                                 json=signed_body(share.share, share.signature))
    assert response.status_code == 201, response.text
    assert response.json()["approval"] is None
    assert_granted(world, response.json(), "packet.share")
    assert last_entry(world).details["handling"] == "H0"
    again = world.client.post(f"/v1/packets/{pid}/shares", headers=ex.bob.auth,
                              json=signed_body(share.share, share.signature))
    assert_denied(world, again, 409, "packet-conflict", "packet.share",
                  "recipient-has-packet", detail="carol already has the packet")


def test_share_with_an_ineligible_liaison_is_refused_and_logged(world: World) -> None:
    ex = exchange(world)
    dave = world.liaison("dave", "CO")
    sealed, pid = ex.sent()
    share = share_content_key(opened_by(sealed, ex.alice, ex.bob), ex.bob.keys, "bob", "dave",
                              dave.keys.public)
    response = world.client.post(f"/v1/packets/{pid}/shares", headers=ex.bob.auth,
                                 json=signed_body(share.share, share.signature))
    assert_denied(world, response, 403, "recipient-not-eligible", "packet.share",
                  "recipient-not-eligible", detail="recipient dave: not a member of channel ch")
    asked = world.client.post(f"/v1/packets/{pid}/share-requests", headers=ex.bob.auth,
                              json={"recipient_id": "dave"})
    assert_denied(world, asked, 403, "recipient-not-eligible", "packet.share_request",
                  "recipient-not-eligible", detail="recipient dave: not a member of channel ch")


def test_share_signed_by_someone_else_is_refused_and_logged(world: World) -> None:
    ex = exchange(world)
    sealed, pid = ex.sent()
    share = share_content_key(opened_by(sealed, ex.alice, ex.bob), LiaisonKeys.generate(), "bob",
                              "carol", ex.carol.keys.public)
    response = world.client.post(f"/v1/packets/{pid}/shares", headers=ex.bob.auth,
                                 json=signed_body(share.share, share.signature))
    assert_denied(world, response, 422, "bad-signature", "packet.share", "bad-signature")


def test_share_requests_are_listed_and_decided_once(world: World) -> None:
    ex = exchange(world)
    _, pid = ex.sent(handling="H2")
    rid = world.client.post(f"/v1/packets/{pid}/share-requests", headers=ex.bob.auth,
                            json={"recipient_id": "carol"}).json()["id"]
    twice = world.client.post(f"/v1/packets/{pid}/share-requests", headers=ex.bob.auth,
                              json={"recipient_id": "carol"})
    assert_denied(world, twice, 409, "packet-conflict", "packet.share_request",
                  "share-request-open")
    listed = world.client.get(f"/v1/packets/{pid}/share-requests", headers=ex.alice.auth)
    assert [r["id"] for r in listed.json()["requests"]] == [rid]
    assert_granted(world, listed.json(), "packet.share_requests")
    url = f"/v1/packets/{pid}/share-requests/{rid}/approve"
    assert world.client.post(url, headers=ex.alice.auth).status_code == 200
    again = world.client.post(url, headers=ex.alice.auth)
    assert_denied(world, again, 409, "packet-conflict", "packet.share_approve",
                  "share-request-decided", detail="approved")
