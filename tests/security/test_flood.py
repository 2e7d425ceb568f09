"""Floods of refusals cannot grow the ledger without limit, and none goes unaccounted.

DESIGN invariant 2 with its one exception (docs/ledger-formats.md): an
unauthenticated caller's refusals are logged one by one up to a budget per
address and interval, then counted into one ``refusal.summary`` entry per
address, reason and interval. Every refusal is accounted for: individually
logged ones plus the summaries' counts equal the requests sent.
"""

from __future__ import annotations

import time
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.ledger.summaries import SUMMARY_ACTION, RefusalSummaries, write_entries
from tests.app.conftest import World

FLOOD = 5_000
BUDGET = 10
PATHS = ["/v1/states", "/v1/packets", "/v1/liaisons", "/v1/channels"]
HEADERS = [{}, {"Authorization": "Bearer cdn1.nope.AAAA"}, {"Authorization": "Basic x"}]


def _budget(world: World, per_interval: int) -> RefusalSummaries:
    # Intervals are aligned to the clock (floor(time / interval)): a flood that ran across
    # an hour's turn was counted in two intervals, with two budgets and twice the
    # summaries (a clean-clone CI run at 16:59:53 found 22 entries). One frozen instant.
    instant = time.time()
    summaries = RefusalSummaries(interval=3600, logged_per_interval=per_interval,
                                 clock=lambda: instant)
    world.client.app.state.refusal_summaries = summaries  # type: ignore[attr-defined]
    return summaries


def _flush(world: World, summaries: RefusalSummaries) -> None:
    write_entries(world.client.app.state.sessions,  # type: ignore[attr-defined]
                  summaries.due(everything=True))


def test_five_thousand_tokenless_requests_add_a_bounded_number_of_entries(
        world: World) -> None:
    summaries = _budget(world, BUDGET)
    before = len(world.entries())
    statuses: Counter[int] = Counter()
    referenced: set[str] = set()
    for n in range(FLOOD):
        response = world.client.get(PATHS[n % len(PATHS)], headers=HEADERS[n % len(HEADERS)])
        statuses[response.status_code] += 1
        body = response.json()
        if "ledger_summary" in body:
            assert "ledger_index" not in body
            referenced.add(body["ledger_summary"]["id"])
    assert statuses == {401: FLOOD}
    _flush(world, summaries)
    added = world.entries()[before:]
    assert len(added) <= BUDGET + 4  # the budget, then one summary per reason and interval
    single = [e for e in added if e.action != SUMMARY_ACTION]
    summary = [e for e in added if e.action == SUMMARY_ACTION]
    assert len(single) == BUDGET
    assert all(e.outcome == "denied" for e in added)
    assert len(single) + sum(e.details["count"] for e in summary) == FLOOD
    assert {e.details["summary"] for e in summary} == referenced
    per_action = Counter({a["action"]: a["count"] for e in summary for a in e.details["actions"]})
    assert sum(per_action.values()) == FLOOD - BUDGET
    assert all(dict(e.subject) == {"type": "address", "id": "testclient"} for e in summary)


@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(requests=st.lists(st.tuples(st.sampled_from(PATHS), st.sampled_from(range(3))),
                         min_size=1, max_size=40),
       budget=st.integers(min_value=0, max_value=5))
def test_every_refusal_is_logged_or_counted_exactly_once(
        world: World, requests: list[tuple[str, int]], budget: int) -> None:
    summaries = _budget(world, budget)
    before = len(world.entries())
    for path, headers in requests:
        assert world.client.get(path, headers=HEADERS[headers]).status_code == 401
    _flush(world, summaries)
    added = world.entries()[before:]
    single = [e for e in added if e.action != SUMMARY_ACTION]
    counted = sum(e.details["count"] for e in added if e.action == SUMMARY_ACTION)
    assert len(single) == min(budget, len(requests))
    assert len(single) + counted == len(requests)


def test_a_liaisons_refusals_past_its_budget_are_counted_not_lost(world: World) -> None:
    prosecutor = world.liaison("pat", "CO")
    summaries = RefusalSummaries(interval=3600, logged_per_interval=BUDGET,
                                 liaison_logged_per_interval=5)
    world.client.app.state.refusal_summaries = summaries  # type: ignore[attr-defined]
    before = len(world.entries())
    for _ in range(20):  # enrolling a state is for coordinators: 403 wrong-role
        response = world.client.post("/v1/states", headers=prosecutor.auth, json={
            "code": "MX", "name": "Mexico", "joining_note": "note"})
        assert response.status_code == 403
    _flush(world, summaries)
    added = world.entries()[before:]
    single = [e for e in added if e.action != SUMMARY_ACTION]
    summary = [e for e in added if e.action == SUMMARY_ACTION]
    assert len(single) == 5
    assert all(e.actor is not None and e.actor.liaison == "pat" for e in single)
    assert [(dict(e.subject), e.reason, e.details["count"]) for e in summary] == [
        ({"type": "liaison", "id": "pat"}, "forbidden", 15)]
