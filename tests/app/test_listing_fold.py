"""A listing checks its bearer token in the statement that reads the page (issue 21).

One statement reads the token, its holder and the page of the token's
liaison (docs/adr/0031), as a retrieval does (docs/adr/0027); every check of
the token is still made, first, on what it read, so a token that is forged,
revoked or expired is refused and logged exactly as on any other route,
whether or not the box holds packets, and nothing of the page is answered.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.app.conftest import Person, World
from tests.app.test_packets_support import (
    assert_denied,
    assert_granted,
    assert_problem,
    exchange,
)
from tests.app.test_retrieval_fold import _expired, _forged, _revoked, _statements


def test_a_listing_reads_its_token_and_its_page_in_one_statement(world: World) -> None:
    ex = exchange(world)
    _, packet = ex.sent([ex.bob, ex.carol])
    with _statements(world) as seen:
        response = world.client.get("/v1/packets?limit=5", headers=ex.bob.auth)
    assert response.status_code == 200, response.text
    assert_granted(world, response.json(), "packet.list")
    assert [p["id"] for p in response.json()["packets"]] == [packet]
    assert response.json()["packets"][0]["recipients"] == ["bob", "carol"]
    token_reads = [s for s in seen if "FROM auth_tokens" in s]
    assert len(token_reads) == 1
    assert "packet_keys" in token_reads[0]
    assert not [s for s in seen if "FROM packets" in s and s not in token_reads]


@pytest.mark.parametrize(("spoil", "reason"), [
    (_revoked, "token-revoked"), (_expired, "token-expired"), (_forged, "forged-token")])
@pytest.mark.parametrize("with_packets", [True, False])
def test_a_spoilt_token_is_refused_before_the_page_is_looked_at_and_logged(
        world: World, spoil: Callable[[World, Person], None], reason: str,
        with_packets: bool) -> None:
    ex = exchange(world)
    if with_packets:
        ex.sent()
    spoil(world, ex.bob)
    response = world.client.get("/v1/packets", headers=ex.bob.auth)
    assert_denied(world, response, 401, "unauthenticated", "packet.list", reason)
    assert "packets" not in response.json()  # a problem, nothing of the page


def test_a_spoilt_token_with_a_bad_cursor_is_refused_as_a_token_first(world: World) -> None:
    ex = exchange(world)
    _forged(world, ex.bob)
    response = world.client.get("/v1/packets?cursor=bm9wZQ", headers=ex.bob.auth)
    assert_denied(world, response, 401, "unauthenticated", "packet.list", "forged-token")


def test_a_bad_cursor_with_a_good_token_is_refused_as_before(world: World) -> None:
    ex = exchange(world)
    ex.sent()
    assert_problem(world.client.get("/v1/packets?cursor=bm9wZQ", headers=ex.bob.auth),
                   422, "invalid-cursor")
    coordinator = world.client.get("/v1/packets?cursor=bm9wZQ", headers=world.coordinator.auth)
    assert_denied(world, coordinator, 403, "forbidden", "packet.list", "wrong-role")
