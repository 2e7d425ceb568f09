"""States, liaisons, clearances and channels: coordinators manage, every action is logged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crypto import LiaisonKeys
from tests.app.conftest import World, b64


def test_coordinator_enrols_a_state_and_it_is_logged(world: World) -> None:
    world.state("MX", "Mexico")
    entry = world.last_entry()
    assert (entry.action, entry.subject, entry.outcome) == (
        "state.enrol", {"type": "state", "id": "MX"}, "granted")
    assert entry.details["joining_note"] == "note MX/2026"
    states = world.client.get("/v1/states", headers=world.coordinator.auth).json()
    assert [s["code"] for s in states] == ["CO", "MX"]


def test_duplicate_state_is_a_conflict_and_changes_nothing_but_its_refusal_entry(
        world: World) -> None:
    world.state("MX")
    before = len(world.entries())
    response = world.client.post("/v1/states", headers=world.coordinator.auth, json={
        "code": "MX", "name": "again", "joining_note": "n"})
    assert response.status_code == 409
    assert response.json()["type"].endswith("/state-exists")
    added = world.entries()[before:]
    assert [(e.action, e.outcome, e.reason) for e in added] == [
        ("state.enrol", "denied", "state-exists")]
    names = [s["name"] for s in world.client.get("/v1/states",
                                                  headers=world.coordinator.auth).json()]
    assert "again" not in names


@pytest.mark.parametrize("code", ["mx", "MEX", "M1", ""])
def test_malformed_state_code_is_a_problem(world: World, code: str) -> None:
    response = world.client.post("/v1/states", headers=world.coordinator.auth, json={
        "code": code, "name": "x", "joining_note": "n"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


def test_prosecutor_cannot_enrol_states_and_the_refusal_is_logged(world: World) -> None:
    alice = world.liaison("alice", "CO")
    response = world.client.post("/v1/states", headers=alice.auth, json={
        "code": "MX", "name": "Mexico", "joining_note": "n"})
    assert response.status_code == 403
    entry = world.last_entry()
    assert (entry.action, entry.outcome, entry.reason) == (
        "state.enrol", "denied", "wrong-role")


def test_withdrawn_state_cannot_come_back(world: World) -> None:
    world.state("MX")
    for status, expected in [("withdrawn", 200), ("active", 409)]:
        response = world.client.patch("/v1/states/MX", headers=world.coordinator.auth,
                                      json={"status": status, "reason": "note"})
        assert response.status_code == expected


def test_enrolled_liaison_shows_keys_and_fingerprint(world: World) -> None:
    alice = world.liaison("alice", "CO")
    body = world.client.get("/v1/liaisons/alice", headers=alice.auth).json()
    assert body["current_key"]["key_id"] == alice.keys.public.key_id
    assert body["current_key"]["fingerprint"] == alice.keys.public.fingerprint
    assert body["current_key"]["signing_public"] == b64(alice.keys.public.signing)


def test_invalid_public_key_is_refused(world: World) -> None:
    response = world.client.post("/v1/liaisons", headers=world.coordinator.auth, json={
        "id": "bob", "state_code": "CO", "name": "Bob", "role": "prosecutor",
        "signing_public": b64(b"\x00" * 31) + "=", "encryption_public": b64(b"\x01" * 32)})
    assert response.status_code == 422


def test_same_key_set_cannot_be_enrolled_twice(world: World) -> None:
    keys = LiaisonKeys.generate().public
    body = {"state_code": "CO", "name": "X", "role": "prosecutor",
            "signing_public": b64(keys.signing), "encryption_public": b64(keys.encryption)}
    first = world.client.post("/v1/liaisons", headers=world.coordinator.auth,
                              json={"id": "x1", **body})
    second = world.client.post("/v1/liaisons", headers=world.coordinator.auth,
                               json={"id": "x2", **body})
    assert (first.status_code, second.status_code) == (201, 409)


def test_clearance_grant_renew_revoke_are_logged(world: World) -> None:
    world.liaison("alice", "CO", level=None)
    clearance = world.grant("alice", "CONFIDENTIAL", days=10)
    assert clearance["in_force"] is True
    until = (datetime.now(UTC) + timedelta(days=100)).isoformat()
    renewed = world.client.post(f"/v1/clearances/{clearance['id']}/renew",
                                headers=world.coordinator.auth, json={"valid_until": until})
    assert renewed.status_code == 200
    assert world.last_entry().action == "clearance.renew"
    revoked = world.client.post(f"/v1/clearances/{clearance['id']}/revoke",
                                headers=world.coordinator.auth, json={"reason": "left"})
    assert revoked.json()["in_force"] is False
    assert world.last_entry().details["reason"] == "left"
    again = world.client.post(f"/v1/clearances/{clearance['id']}/renew",
                              headers=world.coordinator.auth, json={"valid_until": until})
    assert again.status_code == 409


def test_clearance_window_must_be_ordered(world: World) -> None:
    world.liaison("alice", "CO", level=None)
    now = datetime.now(UTC)
    response = world.client.post("/v1/clearances", headers=world.coordinator.auth, json={
        "liaison_id": "alice", "level": "SECRET", "valid_from": now.isoformat(),
        "valid_until": (now - timedelta(days=1)).isoformat()})
    assert response.status_code == 422


def test_liaison_sees_own_clearances_but_not_others(world: World) -> None:
    alice = world.liaison("alice", "CO")
    world.liaison("bob", "CO")
    assert world.client.get("/v1/clearances", headers=alice.auth).status_code == 200
    other = world.client.get("/v1/clearances?liaison_id=bob", headers=alice.auth)
    assert other.status_code == 403
    assert world.last_entry().reason == "wrong-role"


def test_specialized_channel_with_members(world: World) -> None:
    world.state("MX")
    alice, bob = world.liaison("alice", "CO"), world.liaison("bob", "MX")
    response = world.client.post("/v1/channels", headers=world.coordinator.auth, json={
        "id": "drugs", "name": "Drug trafficking", "kind": "specialized",
        "crime_type": "drug trafficking", "min_clearance": "CONFIDENTIAL",
        "members": ["alice", "bob"]})
    assert response.status_code == 201, response.text
    assert response.json()["members"] == ["alice", "bob"]
    assert world.last_entry().details["crime_type"] == "drug trafficking"
    listed = world.client.get("/v1/channels", headers=alice.auth).json()
    assert [c["id"] for c in listed] == ["drugs"]
    world.liaison("carol", "CO")
    assert world.client.get("/v1/channels", headers=world.people["carol"].auth).json() == []
    assert bob.token is not None


def test_specialized_channel_needs_a_crime_type(world: World) -> None:
    response = world.client.post("/v1/channels", headers=world.coordinator.auth, json={
        "id": "x", "name": "x", "kind": "specialized", "min_clearance": "SECRET"})
    assert response.status_code == 422


def test_bilateral_channel_joins_exactly_two_states(world: World) -> None:
    world.state("MX")
    world.state("PE")
    for person, state in [("a", "CO"), ("b", "MX"), ("c", "PE")]:
        world.liaison(person, state)
    response = world.client.post("/v1/channels", headers=world.coordinator.auth, json={
        "id": "bi", "name": "CO-MX", "kind": "bilateral", "min_clearance": "RESTRICTED",
        "members": ["a", "b", "c"]})
    assert response.status_code == 422
    assert response.json()["type"].endswith("/bad-membership")
    assert world.client.get("/v1/channels", headers=world.coordinator.auth).json() == []
