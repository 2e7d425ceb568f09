"""Server-sent events: a liaison hears at once of packets, replies, receipts and shares."""

from __future__ import annotations

import json
import threading
import time

from sqlalchemy import update
from sqlalchemy.sql import Executable

from app.models.auth import AuthToken
from app.models.identity import Clearance, LiaisonKey, State, StateStatus
from crypto import make_receipt
from tests.app.conftest import Person, World
from tests.app.test_packets_support import (
    exchange,
    execute,
    last_entry,
    opened_by,
    signed_body,
)


def _read_events(world: World, person: Person, headers: dict[str, str] | None = None,
                 end_after: float = 1.5) -> list[tuple[int, str, dict[str, object]]]:
    """Open the stream, let it run, then revoke the token so the stream ends."""
    def revoke_later() -> None:
        time.sleep(end_after)
        execute(world, update(AuthToken).where(AuthToken.liaison_id == person.id)
                .values(revoked_at=AuthToken.issued_at))

    threading.Thread(target=revoke_later, daemon=True).start()
    events: list[tuple[int, str, dict[str, object]]] = []
    with world.client.stream("GET", "/v1/events", headers={**person.auth, **(headers or {})}) \
            as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        frame: dict[str, str] = {}
        for line in response.iter_lines():
            if line == "" and frame:
                if frame.get("event") == "end":
                    break
                if "id" in frame:
                    events.append((int(frame["id"]), frame["event"], json.loads(frame["data"])))
                frame = {}
            elif ":" in line and not line.startswith(":"):
                key, _, value = line.partition(":")
                frame[key] = value.strip()
    return events


def test_recipient_hears_of_a_new_packet_and_resumes_after_the_last_id(world: World) -> None:
    ex = exchange(world)
    _, first = ex.sent()
    _, second = ex.sent()
    events = _read_events(world, ex.bob)
    assert [(kind, data["packet_id"]) for _, kind, data in events] == [
        ("packet", first), ("packet", second)]
    assert events[0][2]["from"] == "alice"
    subscribed = last_entry(world)
    assert subscribed.action == "events.subscribe"
    world.login(ex.bob)
    resumed = _read_events(world, ex.bob, {"Last-Event-ID": str(events[0][0])})
    assert [data["packet_id"] for _, _, data in resumed] == [second]


def test_sender_hears_of_a_receipt_and_bystanders_hear_nothing(world: World) -> None:
    ex = exchange(world)
    sealed, pid = ex.sent()
    receipt = make_receipt(opened_by(sealed, ex.alice, ex.bob), ex.bob.id, ex.bob.keys)
    response = world.client.post(f"/v1/packets/{pid}/receipts", headers=ex.bob.auth,
                                 json=signed_body(receipt.receipt, receipt.signature))
    assert response.status_code == 201, response.text
    assert [(k, d["from"]) for _, k, d in _read_events(world, ex.alice)] == [("receipt", "bob")]
    assert _read_events(world, ex.carol, end_after=0.6) == []


def test_stream_needs_a_valid_token(world: World) -> None:
    response = world.client.get("/v1/events")
    assert response.status_code == 401
    assert last_entry(world).action == "events.subscribe"


def _end_reason_after(world: World, person: Person, change: Executable) -> str:
    """Open the stream, apply ``change`` to the database, return the ``end`` event's reason."""
    def later() -> None:
        time.sleep(0.6)
        execute(world, change)

    threading.Thread(target=later, daemon=True).start()
    began = time.monotonic()
    with world.client.stream("GET", "/v1/events", headers=person.auth) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        for line in lines:
            if line == "event: end":
                reason = json.loads(next(lines).removeprefix("data: "))["reason"]
                assert time.monotonic() - began < 5  # within a few poll intervals
                return str(reason)
    raise AssertionError("the stream ended without an end event")


def test_stream_ends_when_the_clearance_is_revoked(world: World) -> None:
    alice = world.liaison("alice", "CO")
    reason = _end_reason_after(world, alice, update(Clearance).where(
        Clearance.liaison_id == "alice").values(revoked_at=Clearance.valid_from))
    assert reason == "no clearance in force"


def test_stream_ends_when_the_state_is_suspended(world: World) -> None:
    alice = world.liaison("alice", "CO")
    reason = _end_reason_after(world, alice, update(State).where(State.code == "CO")
                               .values(status=StateStatus.SUSPENDED))
    assert reason == "state not active"


def test_stream_ends_when_the_key_is_revoked(world: World) -> None:
    alice = world.liaison("alice", "CO")
    reason = _end_reason_after(world, alice, update(LiaisonKey).where(
        LiaisonKey.liaison_id == "alice").values(revoked_at=LiaisonKey.created_at))
    assert reason == "key revoked"
