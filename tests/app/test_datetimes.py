"""Out-of-range datetimes are bad input, not a server error.

A time such as ``0001-01-01T00:00:00+14:00`` parses, but has no UTC form
(it falls before year 1 once normalised), and ``9999-12-31T23:59:59-14:00``
falls after year 9999. Every datetime the API accepts, in a query or a body,
answers 422 for them and changes nothing (DESIGN.md invariant 6).
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from app.timestamp import UTCTimestamp
from tests.app.conftest import World
from tests.app.test_packets_support import assert_problem, ledger_size

UNDERFLOW = "0001-01-01T00:00:00+14:00"
OVERFLOW = "9999-12-31T23:59:59-14:00"


@pytest.mark.parametrize("moment", [UNDERFLOW, OVERFLOW])
@pytest.mark.parametrize("field", ["since", "until"])
def test_out_of_range_listing_bound_is_422(world: World, field: str, moment: str) -> None:
    alice = world.liaison("alice", "CO")
    before = ledger_size(world)
    response = world.client.get("/v1/packets", params={field: moment}, headers=alice.auth)
    body = assert_problem(response, 422, "invalid-request")
    assert any(field in error["loc"] for error in body["errors"])
    assert ledger_size(world) == before


@pytest.mark.parametrize("moment", [UNDERFLOW, OVERFLOW])
def test_out_of_range_clearance_window_is_422(world: World, moment: str) -> None:
    world.liaison("alice", "CO", level=None)
    before = ledger_size(world)
    for body in ({"valid_from": moment, "valid_until": "2030-01-01T00:00:00Z"},
                 {"valid_from": "2026-01-01T00:00:00Z", "valid_until": moment}):
        response = world.client.post("/v1/clearances", headers=world.coordinator.auth,
                                     json={"liaison_id": "alice", "level": "SECRET", **body})
        assert_problem(response, 422, "invalid-request")
    assert ledger_size(world) == before


def test_out_of_range_clearance_renewal_is_422(world: World) -> None:
    world.liaison("alice", "CO", level=None)
    clearance_id = world.grant("alice", "SECRET")["id"]
    before = ledger_size(world)
    response = world.client.post(f"/v1/clearances/{clearance_id}/renew",
                                 headers=world.coordinator.auth, json={"valid_until": OVERFLOW})
    assert_problem(response, 422, "invalid-request")
    assert ledger_size(world) == before


_OFFSETS = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda minutes: timezone(timedelta(minutes=minutes)))


@given(moment=st.datetimes(timezones=st.just(UTC)), zone=_OFFSETS)
def test_timestamp_is_accepted_exactly_when_it_has_a_utc_form(moment: datetime,
                                                              zone: timezone) -> None:
    local = moment.replace(tzinfo=zone)
    try:
        expected: datetime | None = local.astimezone(UTC)
    except OverflowError:
        expected = None
    adapter = TypeAdapter(UTCTimestamp)
    if expected is None:
        with pytest.raises(ValidationError):
            adapter.validate_python(local.isoformat())
    else:
        assert adapter.validate_python(local.isoformat()) == expected


def test_forged_cursor_with_out_of_range_time_is_refused(world: World) -> None:
    alice = world.liaison("alice", "CO")
    raw = f"{UNDERFLOW}|0190f0f0-0000-7000-8000-000000000000".encode()
    cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    response = world.client.get("/v1/packets", params={"cursor": cursor}, headers=alice.auth)
    assert_problem(response, 422, "invalid-cursor")
