"""The witness's HTTP interface: C2SP tlog-witness ``POST /add-checkpoint``.

- 200 ``text/plain``: the cosignature line(s), each ``— <name> <base64>`` and a newline;
- 409 ``text/x.tlog.size``: the latest cosigned size in decimal and a newline;
- 400, 403, 404, 413, 422 ``text/plain``: a one-line reason.

The submission prefix is the server's root; the rules live in
:class:`witness.witness.Witness`, which runs in a worker thread
because it does blocking SQLite I/O.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from witness.errors import Conflict, TooLarge, WitnessError
from witness.submission import MAX_BODY_BYTES
from witness.witness import Witness

SIZE_MEDIA_TYPE = "text/x.tlog.size"


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise TooLarge(f"the body exceeds {MAX_BODY_BYTES} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise TooLarge(f"the body exceeds {MAX_BODY_BYTES} bytes")
    return bytes(body)


def _refusal(error: WitnessError) -> Response:
    if isinstance(error, Conflict):
        # Exactly this media type (C2SP tlog-witness), without a charset parameter.
        return Response(f"{error.latest_size}\n", status_code=409,
                        headers={"Content-Type": SIZE_MEDIA_TYPE})
    return PlainTextResponse(error.detail + "\n", status_code=error.status)


def create_app(witness: Witness) -> Starlette:
    """The witness's ASGI application."""

    async def add_checkpoint(request: Request) -> Response:
        try:
            body = await _read_body(request)
            lines = await run_in_threadpool(witness.add_checkpoint, body)
        except WitnessError as error:
            return _refusal(error)
        return PlainTextResponse(lines)

    return Starlette(routes=[Route("/add-checkpoint", add_checkpoint, methods=["POST"])])
