"""Real-time notifications in the client: the SSE parser and the SDK's event stream.

``cadena inbox --follow`` is tested with the other packet commands (``test_packets.py``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import update

from app.models.auth import AuthToken
from client.errors import ProtocolError
from client.events import SseEvent, notification, parse_sse
from tests.app.conftest import Person, World
from tests.app.test_packets_support import exchange, execute
from tests.client.conftest import sdk_for

# -- the parser ------------------------------------------------------------------

_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\r\n\0"),
                max_size=40)
_events = st.lists(st.builds(SseEvent, event=_text.filter(lambda s: s.strip() == s and s != ""),
                             data=st.lists(_text, min_size=1, max_size=3).map("\n".join),
                             id=st.none() | st.integers(0, 2**62).map(str)), max_size=6)


def _render(event: SseEvent) -> list[str]:
    lines = [f"event: {event.event}"]
    if event.id is not None:
        lines.append(f"id: {event.id}")
    lines += [f"data: {line}" for line in event.data.split("\n")]
    return [*lines, ""]


@given(_events, st.lists(st.sampled_from([": keep-alive", "retry: 2000"]), max_size=3))
def test_rendered_events_parse_back_whatever_comments_come_between(
        events: list[SseEvent], noise: list[str]) -> None:
    lines = [*noise, ""]
    for event in events:
        lines += [*noise, *_render(event)]
    assert list(parse_sse(lines)) == events


def test_parser_follows_the_standard_on_edge_cases() -> None:
    lines = ["data:no space", "data:  two spaces", "", "event: x", "", "id: 7", "data: a", ""]
    assert list(parse_sse(lines)) == [SseEvent("message", "no space\n two spaces"),
                                      SseEvent("message", "a", "7")]
    assert list(parse_sse(["data: cut off before the blank line"])) == []


@pytest.mark.parametrize("event", [
    SseEvent("packet", '{"packet_id": "p"}', None),
    SseEvent("packet", '{"packet_id": "p"}', "seven"),
    SseEvent("packet", "not json", "7"),
    SseEvent("packet", '{"no": "packet id"}', "7"),
    SseEvent("packet", '["p"]', "7"),
])
def test_malformed_notifications_are_protocol_errors(event: SseEvent) -> None:
    with pytest.raises(ProtocolError):
        notification(event)


# -- against the server ------------------------------------------------------------

def revoke_later(world: World, person: Person, after: float,
                  first: Callable[[], object] | None = None) -> threading.Thread:
    """In a thread: optionally do ``first``, then end ``person``'s streams by revoking tokens."""
    def run() -> None:
        if first is not None:
            time.sleep(0.3)
            first()
        time.sleep(after)
        execute(world, update(AuthToken).where(AuthToken.liaison_id == person.id)
                .values(revoked_at=AuthToken.issued_at))
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_follow_logs_in_again_and_resumes_after_the_last_event(world: World) -> None:
    ex = exchange(world)
    _, first = ex.sent()
    bob = sdk_for(world, ex.bob)
    revoke_later(world, ex.bob, 1.0)
    stream = bob.events.follow(connections=2)
    got = next(stream)
    assert (got.kind, got.packet_id, got.data["from"]) == ("packet", first, "alice")
    rest: list[str] = []
    ended = threading.Event()

    def drain() -> None:
        rest.extend(n.packet_id for n in stream)
        ended.set()
    # the first stream ends with the revocation; the second starts after a new login
    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    time.sleep(1.5)
    _, second = ex.sent()
    revoke_later(world, ex.bob, 1.0)
    assert ended.wait(15), "the second stream did not end"
    assert rest == [second]  # nothing replayed, nothing missed
    actions = [e.action for e in world.entries()]
    assert actions.count("events.subscribe") == 2
