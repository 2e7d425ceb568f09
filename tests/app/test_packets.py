"""Submitting, listing, retrieving and downloading packets, with every refusal logged."""

from __future__ import annotations

import base64
import io

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import update

from app.models.identity import Clearance
from crypto import Envelope, LiaisonKeys, decrypt_content, uuid7
from tests.app.conftest import Person, World, b64
from tests.app.rotation_support import rotate
from tests.app.test_packets_support import (
    assert_denied,
    assert_granted,
    assert_problem,
    envelope_b64,
    exchange,
    execute,
    last_entry,
    ledger_size,
    make_channel,
    opened_by,
    past,
    seal,
    sha256,
    submit,
    upload,
)


def test_submitted_packet_is_stored_listed_and_delivered_to_its_recipient(world: World) -> None:
    ex = exchange(world)
    sealed = ex.seal(case_reference="CASE-7")
    response = submit(world, ex.alice, sealed)
    assert response.status_code == 201, response.text
    body = response.json()
    assert_granted(world, body, "packet.submit")
    entry = last_entry(world)
    assert entry.signature == base64.b64encode(sealed.envelope.signature).decode()
    assert entry.details["recipients"] == ["bob"]
    assert entry.details["header_sha256"] == sha256(sealed.envelope.header)
    inbox = world.client.get("/v1/packets?box=inbox", headers=ex.bob.auth)
    assert inbox.status_code == 200
    assert [p["id"] for p in inbox.json()["packets"]] == [body["id"]]
    assert_granted(world, inbox.json(), "packet.list")
    got = world.client.get(f"/v1/packets/{body['id']}", headers=ex.bob.auth)
    assert got.status_code == 200, got.text
    assert_granted(world, got.json(), "packet.retrieve")
    assert base64.b64decode(got.json()["wrapped_key"]) == sealed.envelope.wrapped_keys["bob"]
    stream = world.client.get(f"/v1/packets/{body['id']}/streams/1", headers=ex.bob.auth)
    assert stream.status_code == 200
    assert stream.content == sealed.streams[1]
    opened = opened_by(sealed, ex.alice, ex.bob)
    out = io.BytesIO()
    decrypt_content(opened, 1, io.BytesIO(stream.content), out)
    assert out.getvalue() == b"meet at the border post at dawn"


def _ledger_size(world: World) -> int:
    return ledger_size(world)


def test_sender_outside_the_channel_is_refused_and_logged(world: World) -> None:
    ex = exchange(world)
    dave = world.liaison("dave", "CO")
    response = submit(world, dave, seal(dave, [ex.bob], "ch"))
    assert_denied(world, response, 403, "not-a-member", "packet.submit", "not-a-member")


def test_sender_with_lapsed_clearance_is_refused_and_logged(world: World) -> None:
    ex = exchange(world)
    sealed = ex.seal()
    for stream in sealed.streams:
        upload(world, ex.alice, stream)
    execute(world, update(Clearance).where(Clearance.liaison_id == "alice")
            .values(valid_until=past()))
    response = submit(world, ex.alice, sealed, upload_streams=False)
    assert_denied(world, response, 403, "no-clearance", "packet.submit", "no-clearance")


def test_recipient_outside_the_channel_is_refused_and_logged(world: World) -> None:
    ex = exchange(world)
    dave = world.liaison("dave", "CO")
    response = submit(world, ex.alice, ex.seal([ex.bob, dave]))
    assert_denied(world, response, 403, "recipient-not-eligible", "packet.submit",
                  "recipient-not-eligible", detail="recipient dave: not a member of channel ch")


def test_unknown_recipient_is_refused_after_the_eligible_ones(world: World) -> None:
    ex = exchange(world)
    ghost = Person("ghost", LiaisonKeys.generate())  # never enrolled
    response = submit(world, ex.alice, ex.seal([ex.bob, ghost, ex.carol]))
    assert_denied(world, response, 403, "recipient-not-eligible", "packet.submit",
                  "recipient-not-eligible", detail="recipient ghost: unknown liaison")


def test_first_ineligible_recipient_in_header_order_is_named(world: World) -> None:
    ex = exchange(world)
    dave = world.liaison("dave", "CO")  # cleared, but outside the channel
    ghost = Person("ghost", LiaisonKeys.generate())
    response = submit(world, ex.alice, ex.seal([ex.bob, dave, ghost]))
    assert_denied(world, response, 403, "recipient-not-eligible", "packet.submit",
                  "recipient-not-eligible", detail="recipient dave: not a member of channel ch")


def test_recipient_below_the_classification_is_refused_and_logged(world: World) -> None:
    ex = exchange(world)
    clearances = world.client.get("/v1/clearances?liaison_id=bob", headers=world.coordinator.auth)
    for clearance in clearances.json():
        world.client.post(f"/v1/clearances/{clearance['id']}/revoke",
                          headers=world.coordinator.auth, json={"reason": "downgrade"})
    world.grant("bob", "RESTRICTED")
    response = submit(world, ex.alice, ex.seal(classification="SECRET"))
    assert_denied(world, response, 403, "recipient-not-eligible", "packet.submit",
                  "recipient-not-eligible",
                  detail="recipient bob: clearance RESTRICTED is below SECRET")


def test_recipient_of_a_suspended_state_is_refused(world: World) -> None:
    ex = exchange(world)
    world.client.patch("/v1/states/MX", headers=world.coordinator.auth,
                       json={"status": "suspended", "reason": "review"})
    response = submit(world, ex.alice, ex.seal())
    assert_denied(world, response, 403, "recipient-not-eligible", "packet.submit",
                  "recipient-not-eligible", detail="recipient bob: state MX is suspended")


def test_packet_wrapped_to_a_rotated_key_is_refused(world: World) -> None:
    ex = exchange(world)
    sealed = ex.seal()
    new = LiaisonKeys.generate()
    rotated = rotate(world, ex.bob, new)
    assert rotated.status_code == 201, rotated.text
    response = submit(world, ex.alice, sealed)
    assert_denied(world, response, 403, "recipient-not-eligible", "packet.submit",
                  "recipient-not-eligible", detail="is not the liaison's current key")


def test_replayed_packet_id_is_refused_and_logged(world: World) -> None:
    ex = exchange(world)
    sealed = ex.seal()
    assert submit(world, ex.alice, sealed).status_code == 201
    replay = submit(world, ex.alice, sealed, upload_streams=False)
    assert_denied(world, replay, 409, "packet-conflict", "packet.submit", "packet-id-used")


def test_header_not_signed_by_the_callers_key_is_refused_and_logged(world: World) -> None:
    ex = exchange(world)
    sealed = ex.seal()
    response = submit(world, ex.carol, sealed)
    assert_denied(world, response, 422, "bad-signature", "packet.submit", "bad-signature")
    assert last_entry(world).subject == {"type": "packet_header",
                                          "id": sha256(sealed.envelope.header)}


def test_header_naming_another_sender_is_refused_and_logged(world: World) -> None:
    ex = exchange(world)
    forged = seal(Person("alice", ex.carol.keys), [ex.bob], "ch")
    response = submit(world, ex.carol, forged)
    assert_denied(world, response, 403, "not-the-sender", "packet.submit",
                  "not-the-sender", detail="header sender is alice")


def test_unknown_channel_is_hidden_and_logged(world: World) -> None:
    ex = exchange(world)
    response = submit(world, ex.alice, seal(ex.alice, [ex.bob], "nowhere"))
    assert_denied(world, response, 404, "not-found", "packet.submit", "no-such-channel")


def test_missing_ciphertext_changes_nothing(world: World) -> None:
    ex = exchange(world)
    size = _ledger_size(world)
    response = submit(world, ex.alice, ex.seal(), upload_streams=False)
    assert_problem(response, 422, "missing-stream")
    assert _ledger_size(world) == size
    assert world.client.get("/v1/packets?box=sent", headers=ex.alice.auth).json()["packets"] == []


def test_malformed_envelopes_change_nothing(world: World) -> None:
    ex = exchange(world)
    sealed = ex.seal()
    short = Envelope(sealed.envelope.header, sealed.envelope.signature, {})
    size = _ledger_size(world)
    for body in ({"envelope": "!!"}, {"envelope": b64(b"{}")},
                 {"envelope": b64(short.to_bytes())}, {"envelope": "AAAA", "extra": 1}):
        response = world.client.post("/v1/packets", headers=ex.alice.auth, json=body)
        assert response.status_code == 422, body
        assert response.headers["content-type"] == "application/problem+json"
    assert _ledger_size(world) == size


def test_oversized_submission_is_refused(world: World) -> None:
    ex = exchange(world)
    world.settings.max_json_bytes = 100
    response = submit(world, ex.alice, ex.seal())
    assert_problem(response, 413, "too-large")


def test_coordinators_do_not_exchange_packets(world: World) -> None:
    ex = exchange(world)
    response = world.client.post("/v1/packets", headers=world.coordinator.auth,
                                 json={"envelope": envelope_b64(ex.seal())})
    assert_denied(world, response, 403, "forbidden", "packet.submit", "wrong-role")


def test_sender_sees_metadata_without_a_key(world: World) -> None:
    ex = exchange(world)
    sealed, pid = ex.sent()
    got = world.client.get(f"/v1/packets/{pid}", headers=ex.alice.auth)
    assert got.status_code == 200
    body = got.json()
    assert (body["wrapped_key"], body["recipients"], body["status"]) == (None, ["bob"], "active")
    assert base64.b64decode(body["header"]) == sealed.envelope.header
    assert [s["sha256"] for s in body["streams"]] == [sha256(s) for s in sealed.streams]
    assert_granted(world, body, "packet.retrieve")
    assert last_entry(world).details == {"key_delivered": False}


def test_a_retrieval_names_every_header_recipient_and_every_stream_in_order(
        world: World) -> None:
    # The recipients and streams are read in the same query as the access rules'
    # facts; up to 14 streams, so that index 10 must come after index 9.
    world.state("MX")
    alice = world.liaison("alice", "CO")
    others = [world.liaison(name, "MX") for name in ("bob", "carol", "dave", "erin", "frank")]
    make_channel(world, "wide", [alice, *others], "RESTRICTED")

    @settings(max_examples=12)
    @given(chosen=st.lists(st.sampled_from(others), min_size=1, unique_by=lambda p: p.id),
           attachments=st.integers(0, 12))
    def check(chosen: list[Person], attachments: int) -> None:
        files = {f"f{i}.bin": bytes([i]) * (i + 1) for i in range(attachments)}
        sealed = seal(alice, chosen, "wide", attachments=files or None)
        response = submit(world, alice, sealed)
        assert response.status_code == 201, response.text
        pid = response.json()["id"]
        expected = [{"index": i, "sha256": sha256(s), "length": len(s)}
                    for i, s in enumerate(sealed.streams)]
        for caller in (alice, chosen[-1]):
            got = world.client.get(f"/v1/packets/{pid}", headers=caller.auth)
            assert got.status_code == 200, got.text
            body = got.json()
            assert body["recipients"] == sorted(p.id for p in chosen)
            assert body["streams"] == expected
            assert (body["key_id"] is None) == (caller is alice)

    check()


def test_unknown_packet_and_non_party_get_the_same_logged_404(world: World) -> None:
    ex = exchange(world)
    _, pid = ex.sent()
    stranger = world.client.get(f"/v1/packets/{pid}", headers=ex.carol.auth)
    assert_denied(world, stranger, 404, "not-found", "packet.retrieve", "not-a-party")
    unknown = world.client.get(f"/v1/packets/{uuid7()}", headers=ex.carol.auth)
    assert_denied(world, unknown, 404, "not-found", "packet.retrieve", "no-such-packet")
    assert stranger.json()["detail"] == unknown.json()["detail"]


def test_clearance_is_checked_at_retrieval_not_only_at_submission(world: World) -> None:
    ex = exchange(world)
    _, pid = ex.sent()
    execute(world, update(Clearance).where(Clearance.liaison_id == "bob")
            .values(valid_until=past()))
    response = world.client.get(f"/v1/packets/{pid}", headers=ex.bob.auth)
    assert_denied(world, response, 403, "no-clearance", "packet.retrieve", "no-clearance")
    download = world.client.get(f"/v1/packets/{pid}/streams/0", headers=ex.bob.auth)
    assert_denied(world, download, 403, "no-clearance", "packet.download", "no-clearance")


def test_download_is_logged_with_its_stream(world: World) -> None:
    ex = exchange(world)
    sealed, pid = ex.sent()
    response = world.client.get(f"/v1/packets/{pid}/streams/2", headers=ex.bob.auth)
    assert response.status_code == 200
    assert response.content == sealed.streams[2]
    entry = last_entry(world)
    assert (entry.action, entry.details) == ("packet.download",
                                             {"stream": 2, "bytes": len(sealed.streams[2])})
    assert response.headers["cadena-ledger-index"] == str(entry.index)
    assert response.headers["cadena-ledger-leaf-hash"] == entry.leaf_hash.hex()
    missing = world.client.get(f"/v1/packets/{pid}/streams/9", headers=ex.bob.auth)
    assert_problem(missing, 404, "not-found")
    refused = last_entry(world)  # the refused download is logged; the granted one stands
    assert (refused.index, refused.action, refused.outcome, refused.reason) == (
        entry.index + 1, "packet.download", "denied", "not-found")
    assert dict(refused.subject) == {"type": "packet", "id": pid}
