"""A business rule's refusal of an authenticated caller is in the ledger (issue 18, item 6).

DESIGN invariant 2 logs every refusal: a coordinator's request that a rule
refuses (a third state in a bilateral channel, a state enrolled twice) is a
denied entry naming the action, the subject and the rule; a malformed request
(schema validation) changes nothing and is not logged.
"""

from __future__ import annotations

from sqlalchemy import update

from app.models.ledger import LEDGER_TABLES
from tests.app.conftest import World
from tests.app.test_packets_support import execute


def _bilateral(world: World) -> None:
    world.state("MX")
    world.state("PE")
    world.liaison("ana", "CO")
    world.liaison("bruno", "MX")
    world.liaison("carla", "PE")
    response = world.client.post("/v1/channels", headers=world.coordinator.auth, json={
        "id": "co-mx", "name": "CO-MX", "kind": "bilateral", "min_clearance": "RESTRICTED",
        "members": ["ana", "bruno"]})
    assert response.status_code == 201, response.text


def test_a_third_state_in_a_bilateral_channel_is_refused_and_logged(world: World) -> None:
    _bilateral(world)
    response = world.client.post("/v1/channels/co-mx/members", headers=world.coordinator.auth,
                                 json={"liaison_id": "carla"})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["type"].endswith("/bad-membership")
    entry = world.last_entry()
    assert (entry.action, entry.outcome, entry.reason, dict(entry.subject)) == (
        "channel.add_member", "denied", "bad-membership", {"type": "channel", "id": "co-mx"})
    assert entry.actor is not None
    assert entry.actor.liaison == world.coordinator.id
    assert body["ledger_index"] == entry.index
    members = world.client.get("/v1/channels", headers=world.coordinator.auth).json()
    assert sorted(next(c for c in members if c["id"] == "co-mx")["members"]) == ["ana", "bruno"]


def test_a_state_enrolled_twice_is_refused_and_logged(world: World) -> None:
    world.state("MX")
    response = world.client.post("/v1/states", headers=world.coordinator.auth, json={
        "code": "MX", "name": "Mexico again", "joining_note": "note"})
    assert response.status_code == 409
    entry = world.last_entry()
    assert (entry.action, entry.outcome, entry.reason, dict(entry.subject)) == (
        "state.enrol", "denied", "state-exists", {"type": "state", "id": "MX"})


def test_a_malformed_request_is_not_a_refusal_and_is_not_logged(world: World) -> None:
    before = len(world.entries())
    response = world.client.post("/v1/states", headers=world.coordinator.auth,
                                 json={"code": "not a code"})
    assert response.status_code == 422
    assert len(world.entries()) == before


def test_a_damaged_ledger_head_answers_503_and_changes_nothing(world: World) -> None:
    """No access can be recorded over a head that contradicts the last entry: none is served."""
    before = len(world.entries())
    execute(world, update(LEDGER_TABLES.head).values(last_leaf_hash=b"\x00" * 32))
    response = world.client.get("/v1/states", headers=world.coordinator.auth)
    assert response.status_code == 503
    assert response.json()["type"].endswith("/ledger-damaged")
    assert len(world.entries()) == before
