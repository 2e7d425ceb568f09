"""Admission: the bounds a process keeps before any thread or connection is taken."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from app.admission import Admission, Ticket, Verdict
from app.settings import Settings

SETTINGS = Settings(max_requests_in_flight=10, max_requests_per_liaison=3,
                    max_requests_per_address=4, max_streams_per_liaison=2,
                    max_streams_in_flight=5, max_uploads_per_liaison=1)
LATER = datetime.now(UTC) + timedelta(hours=1)


def _admitted(outcome: Ticket | Verdict) -> Ticket:
    assert isinstance(outcome, Ticket), outcome
    return outcome


def test_a_liaison_past_its_bound_gets_429_and_others_are_not_affected() -> None:
    admission = Admission(SETTINGS)
    for _ in range(3):
        _admitted(admission.enter("request", "ana", "10.0.0.1"))
    refused = admission.enter("request", "ana", "10.0.0.2")
    assert isinstance(refused, Verdict)
    assert (refused.status, refused.code, refused.caller) == (
        429, "too-many-concurrent", "liaison:ana")
    _admitted(admission.enter("request", "bruno", "10.0.0.1"))
    _admitted(admission.enter("request", None, "10.0.0.1"))


def test_streams_and_uploads_have_bounds_of_their_own() -> None:
    admission = Admission(SETTINGS)
    for _ in range(2):
        _admitted(admission.enter("stream", "ana", "a"))
    assert isinstance(admission.enter("stream", "ana", "a"), Verdict)
    _admitted(admission.enter("upload", "ana", "a"))
    assert isinstance(admission.enter("upload", "ana", "a"), Verdict)
    _admitted(admission.enter("request", "ana", "a"))  # requests are counted apart


def test_the_process_bound_sheds_load_with_503() -> None:
    admission = Admission(SETTINGS)
    for n in range(10):
        _admitted(admission.enter("request", f"l{n}", "a"))
    shed = admission.enter("request", "l99", "b")
    assert isinstance(shed, Verdict)
    assert (shed.status, shed.code) == (503, "overloaded")


def test_leaving_gives_the_slot_back() -> None:
    admission = Admission(SETTINGS)
    tickets = [_admitted(admission.enter("request", "ana", "a")) for _ in range(3)]
    assert isinstance(admission.enter("request", "ana", "a"), Verdict)
    admission.leave(tickets[0])
    _admitted(admission.enter("request", "ana", "a"))


def test_a_token_is_known_only_with_its_whole_secret_and_until_it_expires() -> None:
    admission = Admission(SETTINGS)
    admission.remember("cdn1.tid.secret", "ana", LATER)
    assert admission.identify("cdn1.tid.secret") == "ana"
    assert admission.identify("cdn1.tid.guess") is None  # a token id alone spends nothing
    assert admission.identify(None) is None
    admission.remember("cdn1.old.secret", "ana", datetime.now(UTC) - timedelta(seconds=1))
    assert admission.identify("cdn1.old.secret") is None


@given(st.lists(st.tuples(st.sampled_from(["request", "stream", "upload"]),
                          st.sampled_from(["ana", "bruno", None]),
                          st.sampled_from(["a", "b"]), st.booleans()), max_size=80))
def test_counts_never_pass_a_bound_and_return_to_zero(
        steps: list[tuple[str, str | None, str, bool]]) -> None:
    admission = Admission(SETTINGS)
    held: list[Ticket] = []
    for kind, liaison, address, leave_one in steps:
        outcome = admission.enter(kind, liaison, address)
        if isinstance(outcome, Ticket):
            held.append(outcome)
        assert admission.requests <= SETTINGS.max_requests_in_flight
        assert admission.streams <= SETTINGS.max_streams_in_flight
        per_caller: dict[tuple[str, str], int] = {}
        for ticket in held:
            key = (ticket.caller, ticket.counted)
            per_caller[key] = per_caller.get(key, 0) + 1
        for (caller, counted), n in per_caller.items():
            bound = (SETTINGS.max_requests_per_address if caller.startswith("address:")
                     else {"stream": SETTINGS.max_streams_per_liaison,
                           "upload": SETTINGS.max_uploads_per_liaison}.get(
                               counted, SETTINGS.max_requests_per_liaison))
            assert n <= bound
        if leave_one and held:
            admission.leave(held.pop(0))
    for ticket in held:
        admission.leave(ticket)
    assert (admission.requests, admission.streams) == (0, 0)
    assert not admission._in_flight
