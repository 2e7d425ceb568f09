"""The request id and the one ``request`` log line per request, as plain ASGI middleware.

Every request gets a fresh id, bound in structlog's contextvars (so every line
logged while serving it carries it) and returned as ``X-Request-Id``. Plain
ASGI rather than Starlette's ``BaseHTTPMiddleware``: that one runs the
application in a task of its own and relays the response through a memory
stream, which cost more per request than some whole endpoints.

The id is a keyed hash of a per-process counter (:func:`next_request_id`),
not a ``uuid4``: ``os.urandom`` lets go of the interpreter lock for its system
call, and the event loop must then win it back from the request threads; in
a burst of a thousand connections that stalled the loop, and ``/healthz``
behind it, for hundreds of milliseconds. Hashed, the ids do not tell a client
how many requests the process served between two of its own.
"""

from __future__ import annotations

import hashlib
import itertools
import os

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger()

_key = os.urandom(32)
_counter = itertools.count()


def _new_process() -> None:
    """A forked worker gets its own key (and counter): its ids are not its parent's."""
    global _key, _counter
    _key, _counter = os.urandom(32), itertools.count()


os.register_at_fork(after_in_child=_new_process)


def next_request_id() -> str:
    """A fresh request id: 32 hex digits, unique (a 128-bit keyed hash of a counter)."""
    n = next(_counter)  # atomic under the interpreter lock
    return hashlib.blake2b(n.to_bytes(8, "big"), key=_key, digest_size=16).hexdigest()


class RequestLog:
    """ASGI middleware: bind a request id, send it back, log method, path and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve ``scope`` with a request id; log the request once its answer started."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = next_request_id()
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=rid)
        status = 0

        async def tagged(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()),
                                      (b"x-request-id", rid.encode("ascii"))]
            await send(message)

        await self.app(scope, receive, tagged)
        log.info("request", method=scope["method"], path=scope["path"], status=status)
