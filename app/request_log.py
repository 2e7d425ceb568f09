"""The request id and the one ``request`` log line per request, as plain ASGI middleware.

Every request gets a fresh id, bound in structlog's contextvars (so every line
logged while serving it carries it) and returned as ``X-Request-Id``. Plain
ASGI rather than Starlette's ``BaseHTTPMiddleware``: that one runs the
application in a task of its own and relays the response through a memory
stream, which cost more per request than some whole endpoints.
"""

from __future__ import annotations

import uuid

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger()


class RequestLog:
    """ASGI middleware: bind a request id, send it back, log method, path and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve ``scope`` with a request id; log the request once its answer started."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = uuid.uuid4().hex
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
