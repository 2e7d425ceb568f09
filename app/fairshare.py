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

The slot's thread is one of the share's own (:class:`RequestThreads`), not
anyio's pool: the share already bounds how many run, so a hop needs no
limiter, cancel scope or queue with a condition of its own, which had cost
about a tenth of the interpreter's time per retrieve (ADR 0040).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import itertools
import queue
import threading
from collections import Counter, OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

import anyio.to_thread

P = ParamSpec("P")
R = TypeVar("R")


IDLE_SECONDS = 10.0
"""A request thread with nothing to do for this long ends (a new one starts when needed)."""


class _Job:
    """A call handed to a request thread, and where its outcome goes (the event loop)."""

    __slots__ = ("call", "context", "loop", "future", "ended", "finished")

    def __init__(self, call: Callable[[], Any], loop: asyncio.AbstractEventLoop) -> None:
        self.call = call
        self.context = contextvars.copy_context()  # structlog's request binding, and the rest
        self.loop = loop
        self.future: asyncio.Future[Any] = loop.create_future()
        self.ended: asyncio.Future[None] | None = None
        """Set if the caller was cancelled while the call ran: it waits for the end."""
        self.finished = False

    def run(self) -> None:
        """Run the call (in a request thread) and hand its outcome to the loop."""
        try:
            outcome: tuple[bool, Any] = (True, self.context.run(self.call))
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            outcome = (False, exc)
        try:
            self.loop.call_soon_threadsafe(self._deliver, outcome)
        except RuntimeError:  # the loop has closed: nobody awaits the outcome
            pass

    def _deliver(self, outcome: tuple[bool, Any]) -> None:
        self.finished = True
        if self.ended is not None and not self.ended.done():
            self.ended.set_result(None)
        if self.future.done():  # its caller was cancelled
            return
        ok, value = outcome
        if ok:
            self.future.set_result(value)
        else:
            self.future.set_exception(value)


class RequestThreads:
    """The threads a :class:`FairShare` hands its slots out for: at most ``size`` of them.

    The share bounds how many calls run at once, so calls are simply queued;
    a thread is started when fewer are alive than calls could run, and ends
    after :data:`IDLE_SECONDS` without a call.
    """

    def __init__(self, size: int, *, idle_seconds: float = IDLE_SECONDS) -> None:
        """At most ``size`` threads."""
        self.size = size
        self.idle_seconds = idle_seconds
        self._calls: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._alive = 0
        self._names = itertools.count(1)

    @property
    def alive(self) -> int:
        """How many threads are running now."""
        return self._alive

    async def run(self, call: Callable[[], R]) -> R:
        """``call()`` in one of the threads; waits for it to end even if cancelled."""
        job = _Job(call, asyncio.get_running_loop())
        with self._lock:
            self._calls.put(job)
            if self._alive < self.size:
                self._alive += 1
                threading.Thread(target=self._work, daemon=True,
                                 name=f"cadena-request-{next(self._names)}").start()
        try:
            result: R = await job.future
        except asyncio.CancelledError:
            # The call may be using the request's session: the slot is not given
            # back, nor the cancellation passed on, before it ends.
            while not job.finished:
                job.ended = job.loop.create_future()
                try:
                    await job.ended
                except asyncio.CancelledError:
                    continue
            raise
        return result

    def _work(self) -> None:
        while True:
            try:
                job = self._calls.get(timeout=self.idle_seconds)
            except queue.Empty:
                with self._lock:  # a call put under the lock finds a thread alive
                    if self._calls.empty():
                        self._alive -= 1
                        return
                continue
            job.run()
            del job  # its outcome and context are the loop's now


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
        self.threads = RequestThreads(slots)
        """The threads themselves, as many as the slots."""

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
            return await share.threads.run(call)
        finally:
            share.release(caller)

    return hop
