"""A process's request threads are shared between callers, not taken in arrival order.

DESIGN invariant 9. With two request threads a process (ADR 0037) and sixteen
requests in flight allowed per liaison, one liaison's burst queued in front of
everyone else's requests: each of theirs waited for up to sixteen of its.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.fairshare import FairShare, RequestThreads, on_a_fair_thread, sharing
from tests.app.conftest import World


def _order(slots: int, arrivals: list[str]) -> list[str]:
    """The callers in the order they got a slot: everyone arrives while the first slots
    are taken, then the longest holder gives its slot back, one at a time."""
    granted: list[str] = []

    async def main() -> None:
        share = FairShare(slots)
        holders: deque[asyncio.Event] = deque()

        async def one(caller: str) -> None:
            await share.acquire(caller)
            granted.append(caller)
            done = asyncio.Event()
            holders.append(done)
            await done.wait()
            share.release(caller)

        tasks = []
        for caller in arrivals:
            tasks.append(asyncio.create_task(one(caller)))
            await asyncio.sleep(0)  # in this order
        while holders:
            holders.popleft().set()
            for _ in range(4):
                await asyncio.sleep(0)
        await asyncio.gather(*tasks)
        assert share.busy == 0

    asyncio.run(main())
    return granted


def _model(slots: int, arrivals: list[str]) -> list[str]:
    """The same, by the rule: the waiting caller holding the fewest slots, then the one
    served longest ago (never served first), then the one that came first."""
    order = list(arrivals[:slots])
    held = Counter(order)
    holding = deque(order)
    last = {caller: n for n, caller in enumerate(order, 1)}
    waiting = list(arrivals[slots:])
    while holding:
        held[holding.popleft()] -= 1
        if waiting:
            first_seen = {c: waiting.index(c) for c in waiting}
            caller = min(first_seen, key=lambda c: (held[c], last.get(c, 0), first_seen[c]))
            waiting.remove(caller)
            held[caller] += 1
            holding.append(caller)
            order.append(caller)
            last[caller] = len(order)
    return order


def test_a_burst_of_one_caller_does_not_keep_another_waiting_behind_it() -> None:
    arrivals = ["hog"] * 16 + ["ana"]
    granted = _order(2, arrivals)
    # the two slots go to the first arrivals; the next free one goes to ana, not the hog
    assert granted[:3] == ["hog", "hog", "ana"]


def test_waiting_callers_take_turns() -> None:
    arrivals = ["a", "a"] + ["a"] * 4 + ["b"] * 4 + ["c"]
    assert _order(2, arrivals)[2:7] == ["b", "c", "a", "b", "a"]


@given(slots=st.integers(min_value=1, max_value=4),
       arrivals=st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=1, max_size=40))
def test_slots_go_by_the_rule_and_every_request_gets_one(
        slots: int, arrivals: list[str]) -> None:
    granted = _order(slots, arrivals)
    assert sorted(granted) == sorted(arrivals)  # nobody lost, nobody twice
    assert granted == _model(slots, arrivals)


def test_a_waiter_cancelled_gives_its_place_and_a_cancelled_grant_gives_its_slot() -> None:
    async def main() -> None:
        share = FairShare(1)
        await share.acquire("a")
        gone = asyncio.create_task(share.acquire("b"))
        stays = asyncio.create_task(share.acquire("c"))
        await asyncio.sleep(0)
        gone.cancel()
        await asyncio.sleep(0)
        share.release("a")
        await asyncio.wait_for(stays, 1)
        assert share.busy == 1
        share.release("c")
        assert share.busy == 0
        # granted, then cancelled before it ran: the slot goes back
        await share.acquire("a")
        late = asyncio.create_task(share.acquire("b"))
        await asyncio.sleep(0)
        share.release("a")  # grants b
        late.cancel()
        await asyncio.sleep(0)
        assert share.busy == 0
        await asyncio.wait_for(share.acquire("d"), 1)

    asyncio.run(main())


def test_a_request_hop_runs_in_a_thread_under_the_callers_share() -> None:
    """The route's thread hop takes its slot from the share its admission set, and never
    more threads at once than the share's slots."""
    running = 0
    most = 0
    lock = threading.Lock()

    def work() -> str:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.02)
        with lock:
            running -= 1
        return threading.current_thread().name

    async def main() -> list[str]:
        share = FairShare(2)
        hop: Callable[[], Awaitable[str]] = on_a_fair_thread(work)
        results: list[str] = []

        async def one(caller: str) -> None:
            with sharing(share, caller):
                results.append(await hop())

        async with anyio.create_task_group() as tasks:
            for caller in ["hog"] * 6 + ["ana"] * 2:
                tasks.start_soon(one, caller)
        assert share.busy == 0
        return results

    names = anyio.run(main)
    assert len(names) == 8
    assert all(name != threading.current_thread().name for name in names)
    assert most == 2


def test_a_served_request_takes_its_thread_by_its_liaisons_share(world: World) -> None:
    """Through the whole application: admission names the caller, the route's hop takes
    the slot (a liaison is known once this process authenticated its token)."""
    share = world.client.app.state.fair_share  # type: ignore[attr-defined]
    auth = world.coordinator.auth
    assert world.client.get("/v1/states", headers=auth).status_code == 200
    assert world.client.get("/v1/states", headers=auth).status_code == 200
    assert "liaison:coord" in share._served
    assert share.busy == 0


# -- the share's own threads (ADR 0040) ---------------------------------------------------

_PROBE: contextvars.ContextVar[str] = contextvars.ContextVar("probe", default="unset")


def test_a_hop_runs_in_the_shares_own_threads_with_the_requests_context() -> None:
    """The call sees the request's context variables (structlog's binding) and raises
    what it raises; the slot is given back either way."""

    def seen() -> tuple[str, str]:
        return _PROBE.get(), threading.current_thread().name

    def fails() -> None:
        raise LookupError("from the thread")

    async def main() -> None:
        share = FairShare(2)
        with sharing(share, "ana"):
            _PROBE.set("request 1")
            value, name = await on_a_fair_thread(seen)()
            assert value == "request 1"
            assert name.startswith("cadena-request-")
            with pytest.raises(LookupError, match="from the thread"):
                await on_a_fair_thread(fails)()
        assert share.busy == 0
        assert share.threads.alive <= 2

    asyncio.run(main())


def test_a_cancelled_request_keeps_its_slot_until_its_call_has_ended() -> None:
    """The call may hold the request's session: neither the slot nor the cancellation
    goes on before it ends, however often the request is cancelled."""
    started, release = threading.Event(), threading.Event()
    ended: list[float] = []

    def work() -> str:
        started.set()
        release.wait(5)
        ended.append(time.monotonic())
        return "done"

    async def main() -> None:
        share = FairShare(1)

        async def request() -> str:
            with sharing(share, "ana"):
                return await on_a_fair_thread(work)()

        task = asyncio.create_task(request())
        while not started.is_set():
            await asyncio.sleep(0.001)
        task.cancel()
        await asyncio.sleep(0.02)
        task.cancel()  # twice
        await asyncio.sleep(0.02)
        assert not task.done()
        assert share.busy == 1
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert ended
        assert share.busy == 0
        with sharing(share, "bruno"):  # the slot went back: the next caller is served
            assert await asyncio.wait_for(on_a_fair_thread(lambda: "next")(), 5) == "next"

    asyncio.run(main())


def test_request_threads_end_when_idle_and_start_again_when_needed() -> None:
    async def main() -> None:
        threads = RequestThreads(2, idle_seconds=0.05)
        assert threads.alive == 0
        names = await asyncio.gather(*(threads.run(lambda: threading.current_thread().name)
                                       for _ in range(6)))
        assert 1 <= len(set(names)) <= 2
        assert threads.alive <= 2
        deadline = time.monotonic() + 5
        while threads.alive and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert threads.alive == 0
        assert await threads.run(lambda: 41 + 1) == 42  # a new thread starts
        assert threads.alive == 1

    asyncio.run(main())
