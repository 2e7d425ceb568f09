"""Per-liaison and per-address rate limits on logging in and submitting.

A token bucket per key (``challenge:addr:<ip>``, ``challenge:liaison:<id>:addr:<ip>``,
``token:addr:<ip>``, ``submit:<liaison>``) holds up to ``per_minute`` tokens
and refills continuously at ``per_minute`` per minute. A request over the
limit is refused with :class:`RateLimited` (429 ``rate-limited``), an
``AccessDenied``: the refusal is counted into the ledger's refusal summary
(``app.ledger.summaries``).

The buckets live in the process. With several worker processes (or several
servers) each enforces its own limit, so the effective limit is up to
``workers x per_minute``; a shared, database-backed limiter is not needed for
the purpose (slowing down guessing and floods), and the refusals are all
counted in the ledger whichever process refused.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Annotated

from fastapi import Depends, Request

from app.ledger import AccessDenied, Reason, draft
from ledger import Actor

MAX_KEYS = 10_000  # least recently used buckets are forgotten beyond this (a forgotten one is full)


class RateLimited(AccessDenied):
    """Too many requests from one liaison or client address; try again later."""

    status, code, title = 429, "rate-limited", "Too many requests"


class TokenBucket:
    """``capacity`` tokens, refilled at ``capacity`` per minute."""

    def __init__(self, capacity: int, moment: float) -> None:
        self.capacity = capacity
        self.tokens = float(capacity)
        self.updated = moment

    def take(self, moment: float) -> float:
        """Take one token; return 0 on success, else the seconds until one is there."""
        rate = self.capacity / 60.0
        self.tokens = min(self.capacity, self.tokens + (moment - self.updated) * rate)
        self.updated = moment
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / rate


class RateLimiter:
    """Token buckets by key, thread-safe, bounded in memory."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._lock = threading.Lock()

    def wait_for(self, key: str) -> float:
        """Charge one request to ``key``: 0 if allowed, else seconds until it would be."""
        with self._lock:
            moment = self._clock()
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = TokenBucket(self.per_minute, moment)
                if len(self._buckets) > MAX_KEYS:
                    self._buckets.popitem(last=False)
            self._buckets.move_to_end(key)
            return bucket.take(moment)


class RateLimits:
    """The limiters of one process: logins (per address and liaison) and submissions."""

    def __init__(self, login_per_minute: int, submit_per_minute: int) -> None:
        self.login = RateLimiter(login_per_minute)
        self.submit = RateLimiter(submit_per_minute)

    def check(self, limiter: RateLimiter, keys: list[str], actor: Actor | None, action: str,
              *, subject: Mapping[str, str]) -> None:
        """Charge every key; raise a logged 429 if any of them is over its limit."""
        waits = [limiter.wait_for(key) for key in keys]
        wait = max(waits, default=0.0)
        if wait > 0:
            raise RateLimited(f"too many requests; retry in {math.ceil(wait)} s",
                              draft(actor, action, subject, reason=Reason.RATE_LIMITED),
                              retry_after=math.ceil(wait))


_create_lock = threading.Lock()


async def get_rate_limits(request: Request) -> RateLimits:
    """The process's limiters (made on first use from the application's settings).

    ``async``: it does no I/O, so it runs on the event loop, not in a worker thread.
    """
    state = request.app.state
    with _create_lock:
        limits: RateLimits | None = getattr(state, "rate_limits", None)
        if limits is None:
            settings = state.settings
            limits = RateLimits(settings.rate_login_per_minute, settings.rate_submit_per_minute)
            state.rate_limits = limits
    return limits


def client_address(request: Request) -> str:
    """The peer address of the request (the proxy's, behind a reverse proxy)."""
    return request.client.host if request.client is not None else "unknown"


RateLimitsDep = Annotated[RateLimits, Depends(get_rate_limits)]
