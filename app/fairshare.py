"""A process's request threads, shared between callers rather than taken in arrival order.

DESIGN invariant 9: no single client can starve the service. Admission
(``app.admission``) bounds what each caller has in flight (16 requests a
liaison by default); a process has two request threads (ADR 0037). Taken in
arrival order, a liaison's sixteen requests sat in front of everyone else's,
and each of theirs waited for up to sixteen of its.

:class:`FairShare` hands the threads out on the event loop. A request whose
caller's slot is free and that nobody waits before takes a slot at once;
otherwise it waits in its caller's queue, and each slot given back goes to
the waiting caller that **holds the fewest slots**, then the one **served
longest ago**, then the one that came first. Nothing is refused or reordered
within one caller: a caller alone still gets every slot, one after another.

The admission middleware says whose request this is (:func:`sharing`, a
context variable, as it counts the request); the route's thread hop
(``app.ledger.route``) takes the slot with :func:`on_a_fair_thread`.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import itertools
from collections import Counter, OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

import anyio
import anyio.to_thread

P = ParamSpec("P")
R = TypeVar("R")


class FairShare:
    """The request slots of one process and the callers waiting for one (event loop only)."""

    def __init__(self, slots: int) -> None:
        """``slots`` request threads to share."""
        self.slots = slots
        self.busy = 0
        self._held: Counter[str] = Counter()
        self._served: dict[str, int] = {}
        self._turn = itertools.count(1)
        self._waiting: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()
        self._threads: anyio.CapacityLimiter | None = None

    @property
    def threads(self) -> anyio.CapacityLimiter:
        """The limiter of the threads themselves: as many as the slots (made on the loop)."""
        if self._threads is None:
            self._threads = anyio.CapacityLimiter(self.slots)
        return self._threads

    async def acquire(self, caller: str) -> None:
        """Wait for a slot for ``caller`` (cancelled, it leaves its place or its slot)."""
        if self.busy < self.slots and not self._waiting:
            self._take(caller)
            return
        granted = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(caller, deque()).append(granted)
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self.release(caller)  # granted as it was cancelled: the slot goes on
            else:
                self._forget(caller, granted)
            raise

    def release(self, caller: str) -> None:
        """Give ``caller``'s slot back; the next waiting caller by the rule gets it."""
        self.busy -= 1
        self._held[caller] -= 1
        if self._held[caller] <= 0:
            del self._held[caller]
        while self.busy < self.slots and self._waiting:
            chosen = min(self._waiting, key=self._priority)  # first in arrival order on a tie
            queue = self._waiting[chosen]
            granted = queue.popleft()
            if not queue:
                del self._waiting[chosen]
            if granted.done():  # cancelled while waiting
                continue
            self._take(chosen)
            granted.set_result(None)

    def _priority(self, caller: str) -> tuple[int, int]:
        return self._held[caller], self._served.get(caller, 0)

    def _take(self, caller: str) -> None:
        self.busy += 1
        self._held[caller] += 1
        self._served[caller] = next(self._turn)
        if len(self._served) > 4 * self.slots + 1024:  # callers gone long ago
            for gone in [c for c in self._served if c not in self._held
                         and c not in self._waiting][:1024]:
                del self._served[gone]

    def _forget(self, caller: str, granted: asyncio.Future[None]) -> None:
        queue = self._waiting.get(caller)
        if queue is None:
            return
        try:
            queue.remove(granted)
        except ValueError:
            return
        if not queue:
            del self._waiting[caller]


_SHARE: contextvars.ContextVar[tuple[FairShare, str] | None] = contextvars.ContextVar(
    "cadena_fair_share", default=None)


@contextmanager
def sharing(share: FairShare, caller: str) -> Iterator[None]:
    """Within this block (this request's task), thread hops take ``caller``'s share."""
    token = _SHARE.set((share, caller))
    try:
        yield
    finally:
        _SHARE.reset(token)


def on_a_fair_thread(run: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """``run`` in a request thread, as a coroutine; the slot from the caller's share.

    Outside :func:`sharing` (a request admission did not count), anyio's
    default thread limiter, as before.
    """

    @functools.wraps(run)
    async def hop(*args: P.args, **kwargs: P.kwargs) -> R:
        call = functools.partial(run, *args, **kwargs)
        found = _SHARE.get()
        if found is None:
            return await anyio.to_thread.run_sync(call)
        share, caller = found
        await share.acquire(caller)
        try:
            return await anyio.to_thread.run_sync(call, limiter=share.threads)
        finally:
            share.release(caller)

    return hop
