"""A limit on the size of request bodies, enforced before they are read whole.

JSON bodies may hold at most ``CADENA_MAX_JSON_BYTES``. A declared
``Content-Length`` above it is refused at once, without reading a byte; a body
without one (chunked) is counted as it streams in, and the request is refused
as soon as the count passes the limit, whatever the route was doing with it.
Both answers are the 413 ``too-large`` problem. Blob uploads
(``PUT /v1/blobs/...``) stream to disk under their own, larger limit
(``CADENA_MAX_UPLOAD_BYTES``) and are left alone here.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.blobs import ContentTooLarge
from app.errors import PROBLEM_MEDIA_TYPE


class _BodyTooLarge(Exception):
    """Raised from ``receive`` when the streamed body passes the limit."""


def _exempt(scope: Scope) -> bool:
    return scope["method"] == "PUT" and str(scope["path"]).startswith("/v1/blobs/")


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None


class BodySizeLimit:
    """ASGI middleware: 413 for request bodies over ``max_bytes`` (blob uploads exempt)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve ``scope``, refusing an oversized body before or while it is read."""
        if scope["type"] != "http" or _exempt(scope):
            await self.app(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, send)
            return
        received = 0
        tripped = False

        async def counted() -> Message:
            nonlocal received, tripped
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    tripped = True
                    raise _BodyTooLarge
            return message

        async def guarded(message: Message) -> None:
            # Once the limit tripped, whatever the application answers (FastAPI
            # turns a failed body read into a 400) is replaced by the 413.
            if not tripped:
                await send(message)

        try:
            await self.app(scope, counted, guarded)
        except _BodyTooLarge:
            pass
        if tripped:
            await self._refuse(scope, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        error = ContentTooLarge(f"a request body may hold at most {self.max_bytes} bytes")
        body = json.dumps(error.problem(instance=str(scope["path"]))).encode()
        await send({"type": "http.response.start", "status": error.status, "headers": [
            (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]})
        await send({"type": "http.response.body", "body": body})
