"""Listing, withdrawal and request/reply threads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from app.models.identity import Clearance
from app.models.packet import Packet
from tests.app.conftest import World
from tests.app.test_packets_support import (
    assert_denied,
    assert_granted,
    assert_problem,
    exchange,
    execute,
    ledger_size,
    past,
    seal,
    submit,
    upload,
)


def _inbox(world: World, auth: dict[str, str], query: str = "") -> list[str]:
    response = world.client.get(f"/v1/packets?box=inbox{query}", headers=auth)
    assert response.status_code == 200, response.text
    return [p["id"] for p in response.json()["packets"]]


def test_listing_filters_and_pages_with_a_cursor(world: World) -> None:
    ex = exchange(world)
    ids = [ex.sent(case_reference=f"CASE-{i % 2}")[1] for i in range(3)]
    assert _inbox(world, ex.bob.auth) == ids[::-1]
    assert _inbox(world, ex.bob.auth, "&case_reference=CASE-0") == [ids[2], ids[0]]
    assert _inbox(world, ex.carol.auth) == []
    sent = world.client.get("/v1/packets?box=sent&limit=2", headers=ex.alice.auth).json()
    assert [p["id"] for p in sent["packets"]] == ids[:0:-1]
    assert_granted(world, sent, "packet.list")
    rest = world.client.get(f"/v1/packets?box=sent&limit=2&cursor={sent['next_cursor']}",
                            headers=ex.alice.auth).json()
    assert ([p["id"] for p in rest["packets"]], rest["next_cursor"]) == ([ids[0]], None)
    until = (datetime.now(UTC) - timedelta(days=1)).isoformat().replace("+00:00", "Z")
    assert _inbox(world, ex.bob.auth, f"&until={until}") == []
    assert _inbox(world, ex.bob.auth, "&status=withdrawn&channel=ch") == []
    bad = world.client.get("/v1/packets?cursor=bm9wZQ", headers=ex.bob.auth)
    assert_problem(bad, 422, "invalid-cursor")


def test_listing_hides_packets_above_the_clearance_in_force_now(world: World) -> None:
    ex = exchange(world)
    _, restricted = ex.sent(classification="RESTRICTED")
    ex.sent(classification="SECRET")
    execute(world, update(Clearance).where(Clearance.liaison_id == "bob")
            .values(level=1))
    assert _inbox(world, ex.bob.auth) == [restricted]
    execute(world, update(Clearance).where(Clearance.liaison_id == "bob")
            .values(valid_until=past()))
    response = world.client.get("/v1/packets", headers=ex.bob.auth)
    assert_denied(world, response, 403, "no-clearance", "packet.list", "no-clearance")


def _z(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_due_date_already_past_is_bad_input_that_changes_nothing(world: World) -> None:
    """Malformed, not a refusal: 422, nothing stored, nothing in the ledger."""
    ex = exchange(world)
    for due in ("2020-01-01T00:00:00Z", _z(datetime.now(UTC) - timedelta(minutes=1))):
        sealed = ex.seal(urgency="urgent", due=due)
        for stream in sealed.streams:  # uploads are logged; the submission must not be
            assert upload(world, ex.alice, stream).status_code in (200, 201)
        size = ledger_size(world)
        response = submit(world, ex.alice, sealed, upload_streams=False)
        body = assert_problem(response, 422, "invalid-due")
        assert ledger_size(world) == size
        assert due in body["detail"]
    assert world.client.get("/v1/packets?box=sent", headers=ex.alice.auth).json()["packets"] == []
    _, later = ex.sent(due=_z(datetime.now(UTC) + timedelta(minutes=5)))
    assert later


def test_request_past_due_without_reply_is_overdue_until_answered(world: World) -> None:
    ex = exchange(world)
    _, request = ex.sent(urgency="urgent", due=_z(datetime.now(UTC) + timedelta(days=1)))
    _, later = ex.sent(due="2999-01-01T00:00:00Z")
    # A day later (the stored due date moved back instead of the clock forward).
    execute(world, update(Packet).where(Packet.id == request)
            .values(due=datetime(2020, 1, 1, tzinfo=UTC)))
    listed = world.client.get("/v1/packets?box=sent", headers=ex.alice.auth).json()["packets"]
    assert {p["id"]: p["overdue"] for p in listed} == {request: True, later: False}
    reply = seal(ex.bob, [ex.alice], "ch", in_reply_to=request)
    assert submit(world, ex.bob, reply).status_code == 201
    listed = world.client.get("/v1/packets?box=sent", headers=ex.alice.auth).json()["packets"]
    assert {p["id"]: p["overdue"] for p in listed} == {request: False, later: False}


def test_withdrawal_stops_key_delivery_but_not_the_originators_view(world: World) -> None:
    ex = exchange(world)
    _, pid = ex.sent()
    by_bob = world.client.post(f"/v1/packets/{pid}/withdraw", headers=ex.bob.auth,
                               json={"reason": "mine now"})
    assert_denied(world, by_bob, 403, "originator-only", "packet.withdraw", "originator-only")
    done = world.client.post(f"/v1/packets/{pid}/withdraw", headers=ex.alice.auth,
                             json={"reason": "sent in error"})
    assert done.status_code == 200, done.text
    assert (done.json()["status"], done.json()["withdrawal_reason"]) == ("withdrawn",
                                                                         "sent in error")
    assert_granted(world, done.json(), "packet.withdraw")
    again = world.client.post(f"/v1/packets/{pid}/withdraw", headers=ex.alice.auth,
                              json={"reason": "again"})
    assert_denied(world, again, 409, "packet-conflict", "packet.withdraw", "packet-withdrawn")
    for url, action in ((f"/v1/packets/{pid}", "packet.retrieve"),
                        (f"/v1/packets/{pid}/streams/1", "packet.download")):
        refused = world.client.get(url, headers=ex.bob.auth)
        assert_denied(world, refused, 410, "packet-withdrawn", action, "packet-withdrawn")
    own = world.client.get(f"/v1/packets/{pid}", headers=ex.alice.auth)
    assert own.status_code == 200
    assert own.json()["status"] == "withdrawn"
    assert _inbox(world, ex.bob.auth, "&status=withdrawn") == [pid]


def test_thread_shows_the_request_and_its_replies_to_their_parties(world: World) -> None:
    ex = exchange(world)
    _, request = ex.sent(recipients=[ex.bob, ex.carol], due="2999-01-01T00:00:00Z")
    reply = seal(ex.bob, [ex.alice], "ch", in_reply_to=request)
    reply_id = submit(world, ex.bob, reply).json()["id"]
    aside = seal(ex.carol, [ex.alice], "ch", in_reply_to=request)
    aside_id = submit(world, ex.carol, aside).json()["id"]
    thread = world.client.get(f"/v1/packets/{reply_id}/thread", headers=ex.alice.auth)
    assert thread.status_code == 200
    assert thread.json()["root"] == request
    assert [p["id"] for p in thread.json()["packets"]] == [request, reply_id, aside_id]
    assert_granted(world, thread.json(), "packet.thread")
    bobs = world.client.get(f"/v1/packets/{request}/thread", headers=ex.bob.auth).json()
    assert [p["id"] for p in bobs["packets"]] == [request, reply_id]
    outsider = world.client.get(f"/v1/packets/{aside_id}/thread", headers=ex.bob.auth)
    assert_denied(world, outsider, 404, "not-found", "packet.thread", "not-a-party")


def test_reply_to_a_packet_the_sender_cannot_see_is_refused_and_logged(world: World) -> None:
    ex = exchange(world)
    _, private = ex.sent()
    guess = seal(ex.carol, [ex.alice], "ch", in_reply_to=private)
    response = submit(world, ex.carol, guess)
    assert_denied(world, response, 422, "invalid-reply", "packet.submit", "invalid-reply")
