"""State status changes never leave the centre without an active coordinator.

An active coordinator is a liaison with the coordinator role, in an active
state, holding a usable key set. Suspending or withdrawing a state that would
leave none is refused (409 ``last-coordinator``), changes nothing, and the
refusal is in the ledger (DESIGN.md invariants 2 and 6).
"""

from __future__ import annotations

import httpx
import pytest

from tests.app.conftest import Person, World
from tests.app.test_packets_support import assert_denied, assert_problem

STOPPING = ["suspended", "withdrawn"]


def _set_status(world: World, by: Person, code: str, status: str) -> httpx.Response:
    response: httpx.Response = world.client.patch(
        f"/v1/states/{code}", headers=by.auth, json={"status": status, "reason": "review"})
    return response


def _status_of(world: World, code: str) -> str:
    states = world.client.get("/v1/states", headers=world.coordinator.auth)
    assert states.status_code == 200, states.text
    return str({s["code"]: s["status"] for s in states.json()}[code])


@pytest.mark.parametrize("status", STOPPING)
def test_last_coordinators_state_cannot_be_stopped(world: World, status: str) -> None:
    response = _set_status(world, world.coordinator, "CO", status)
    assert_denied(world, response, 409, "last-coordinator", "state.status",
                  "last-coordinator")
    assert "no active coordinator would remain" in response.json()["detail"]
    assert _status_of(world, "CO") == "active"


@pytest.mark.parametrize("status", STOPPING)
def test_a_state_may_stop_while_another_coordinator_remains(world: World, status: str) -> None:
    world.state("MX")
    world.liaison("mxc", "MX", role="coordinator")
    response = _set_status(world, world.coordinator, "CO", status)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == status


def test_the_other_coordinator_cannot_then_stop_their_own_state(world: World) -> None:
    world.state("MX")
    other = world.liaison("mxc", "MX", role="coordinator")
    assert _set_status(world, world.coordinator, "CO", "suspended").status_code == 200
    response = _set_status(world, other, "MX", "suspended")
    assert_denied(world, response, 409, "last-coordinator", "state.status",
                  "last-coordinator")


def test_a_coordinator_with_a_revoked_key_does_not_count(world: World) -> None:
    world.state("MX")
    other = world.liaison("mxc", "MX", role="coordinator")
    revoked = world.client.post(f"/v1/liaisons/mxc/keys/{other.keys.public.key_id}/revoke",
                                headers=world.coordinator.auth, json={"reason": "lost"})
    assert revoked.status_code == 200, revoked.text
    response = _set_status(world, world.coordinator, "CO", "withdrawn")
    assert_problem(response, 409, "last-coordinator")
    assert _status_of(world, "CO") == "active"


def test_a_coordinator_in_a_suspended_state_does_not_count(world: World) -> None:
    world.state("MX")
    world.liaison("mxc", "MX", role="coordinator", login=False)
    assert _set_status(world, world.coordinator, "MX", "suspended").status_code == 200
    response = _set_status(world, world.coordinator, "CO", "suspended")
    assert_problem(response, 409, "last-coordinator")


def test_reactivating_a_state_is_never_refused(world: World) -> None:
    world.state("MX")
    assert _set_status(world, world.coordinator, "MX", "suspended").status_code == 200
    assert _set_status(world, world.coordinator, "MX", "active").status_code == 200
