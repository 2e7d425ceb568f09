"""Ciphertext downloads with HTTP Range (RFC 9110 §14): exactly the bytes asked for."""

from __future__ import annotations

import os

from hypothesis import given
from hypothesis import strategies as st

from tests.app.conftest import World
from tests.app.test_packets_support import assert_problem, exchange, last_entry, ledger_size


def test_random_ranges_return_exactly_the_right_bytes(world: World) -> None:
    ex = exchange(world)
    sealed, pid = ex.sent(message=os.urandom(3000), chunk_size=256)
    stream = sealed.streams[1]

    @given(first=st.integers(0, len(stream) - 1), extra=st.integers(0, len(stream) + 100))
    def check(first: int, extra: int) -> None:
        last = first + extra
        response = world.client.get(f"/v1/packets/{pid}/streams/1",
                                    headers={**ex.bob.auth, "Range": f"bytes={first}-{last}"})
        assert response.status_code == 206
        assert response.content == stream[first:last + 1]
        end = min(last, len(stream) - 1)
        assert response.headers["content-range"] == f"bytes {first}-{end}/{len(stream)}"
        entry = last_entry(world)
        assert (entry.action, entry.details["range"]) == ("packet.download", f"{first}-{end}")

    check()


def test_suffix_and_unsatisfiable_ranges(world: World) -> None:
    ex = exchange(world)
    sealed, pid = ex.sent()
    stream = sealed.streams[1]
    url = f"/v1/packets/{pid}/streams/1"
    tail = world.client.get(url, headers={**ex.bob.auth, "Range": "bytes=-10"})
    assert (tail.status_code, tail.content) == (206, stream[-10:])
    size = ledger_size(world)
    beyond = world.client.get(url, headers={**ex.bob.auth, "Range": f"bytes={len(stream)}-"})
    assert_problem(beyond, 416, "range-not-satisfiable")
    assert beyond.headers["content-range"] == f"bytes */{len(stream)}"
    assert ledger_size(world) == size
    whole = world.client.get(url, headers={**ex.bob.auth, "Range": "bytes=0-1,4-5"})
    assert (whole.status_code, whole.content) == (200, stream)
    assert whole.headers["accept-ranges"] == "bytes"
