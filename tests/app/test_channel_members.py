"""Taking a member out of a channel: coordinators only, logged, and it takes effect at once.

After removal the liaison is refused the channel's packets (membership gates
every access, DESIGN invariant 3), as the authorization matrix's "non-member"
row does by deleting the row; here it happens through the API.
"""

from __future__ import annotations

from tests.app.conftest import World
from tests.app.test_packets_support import make_channel


def _members(world: World, channel: str) -> list[str]:
    listed = world.client.get("/v1/channels", headers=world.coordinator.auth).json()
    return sorted(next(c for c in listed if c["id"] == channel)["members"])


def test_a_coordinator_removes_a_member_and_it_is_logged(world: World) -> None:
    world.state("MX")
    ana, bruno = world.liaison("ana", "CO"), world.liaison("bruno", "MX")
    make_channel(world, "co-mx", [ana, bruno])
    response = world.client.delete("/v1/channels/co-mx/members/bruno",
                                   headers=world.coordinator.auth)
    assert response.status_code == 200, response.text
    assert response.json()["members"] == ["ana"]
    entry = world.last_entry()
    assert (entry.action, entry.outcome, dict(entry.subject), dict(entry.details)) == (
        "channel.remove_member", "granted", {"type": "channel", "id": "co-mx"},
        {"liaison": "bruno"})
    assert _members(world, "co-mx") == ["ana"]
    seen = world.client.get("/v1/channels", headers=bruno.auth).json()
    assert "co-mx" not in {c["id"] for c in seen}


def test_removing_a_non_member_or_from_no_channel_is_refused_logged_and_changes_nothing(
        world: World) -> None:
    ana = world.liaison("ana", "CO")
    world.liaison("dora", "CO")
    make_channel(world, "co", [ana])
    for path in ("/v1/channels/co/members/dora", "/v1/channels/none/members/ana"):
        response = world.client.delete(path, headers=world.coordinator.auth)
        assert response.status_code == 404, response.text
        entry = world.last_entry()
        assert (entry.action, entry.outcome, entry.reason) == (
            "channel.remove_member", "denied", "not-found")
        assert response.json()["ledger_index"] == entry.index
    assert _members(world, "co") == ["ana"]


def test_a_prosecutor_cannot_remove_anyone_and_the_refusal_is_logged(world: World) -> None:
    world.state("MX")
    ana, bruno = world.liaison("ana", "CO"), world.liaison("bruno", "MX")
    make_channel(world, "co-mx", [ana, bruno])
    response = world.client.delete("/v1/channels/co-mx/members/bruno", headers=ana.auth)
    assert response.status_code == 403, response.text
    entry = world.last_entry()
    assert (entry.action, entry.outcome) == ("channel.remove_member", "denied")
    assert _members(world, "co-mx") == ["ana", "bruno"]
