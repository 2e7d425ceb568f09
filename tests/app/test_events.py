"""Server-sent events: a liaison hears at once of packets, replies, receipts and shares."""

from __future__ import annotations

import json
import threading
import time

from sqlalchemy import update

from app.models.auth import AuthToken
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
