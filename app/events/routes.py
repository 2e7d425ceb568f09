"""``GET /v1/events``: a server-sent events stream of what concerns the caller.

Each event's id is the ledger index of the action behind it; a client that
reconnects sends ``Last-Event-ID`` (or ``?after=``) and gets every event it
missed. At every poll the stream checks the caller again as every request is
checked (token, key, clearance in force, state active: DESIGN invariant 3)
and ends, with an ``end`` event naming why, once any of them fails; opening
the stream is itself logged.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from typing import Annotated

import anyio
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import sessionmaker

from app.auth.dependencies import PrincipalDep, bearer_of
from app.auth.service import authenticate
from app.events.service import pending
from app.ledger import (
    AccessDenied,
    SessionDep,
    UnitOfWork,
    UnitOfWorkRoute,
    draft,
    record,
    transaction,
)
from app.models.event import Event

router = APIRouter(tags=["events"], route_class=UnitOfWorkRoute)
POLL_SECONDS = 0.5
HEARTBEAT_SECONDS = 15.0


def _poll(sessions: sessionmaker[UnitOfWork], liaison_id: str, bearer: str,
          after: int) -> tuple[str | None, Sequence[Event]]:
    """Why the stream must end (``None``: it goes on), and the events after ``after``."""
    with transaction(sessions) as session:
        try:
            authenticate(session, bearer, "events.subscribe")
        except AccessDenied as refused:
            return refused.detail, []
        return None, pending(session, liaison_id, after)


def _frame(event: Event) -> bytes:
    return (f"id: {event.ledger_index}\nevent: {event.kind}\ndata: {event.data}\n\n").encode()


async def _stream(request: Request, sessions: sessionmaker[UnitOfWork], liaison_id: str,
                  bearer: str, *, after: int) -> AsyncIterator[bytes]:
    yield b"retry: 2000\n\n"
    last_beat = asyncio.get_running_loop().time()
    while not await request.is_disconnected():
        ended, events = await anyio.to_thread.run_sync(_poll, sessions, liaison_id, bearer,
                                                       after)
        if ended is not None:
            yield f"event: end\ndata: {json.dumps({'reason': ended})}\n\n".encode()
            return
        for event in events:
            after = event.ledger_index
            yield _frame(event)
        if asyncio.get_running_loop().time() - last_beat > HEARTBEAT_SECONDS:
            last_beat = asyncio.get_running_loop().time()
            yield b": keep-alive\n\n"
        await asyncio.sleep(POLL_SECONDS)


@router.get("/v1/events", name="events.subscribe", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}}})
def subscribe(request: Request, session: SessionDep, by: PrincipalDep,
              after: Annotated[int | None, Query(ge=-1, le=2**62)] = None,
              *, last_event_id: Annotated[str | None, Header()] = None) -> StreamingResponse:
    """Stream the caller's notifications; resume after ``Last-Event-ID`` / ``after``."""
    start = after if after is not None else -1
    if last_event_id is not None and last_event_id.strip().isdigit():
        start = max(start, int(last_event_id.strip()))
    record(session, draft(by.actor, "events.subscribe", {"type": "liaison", "id": by.liaison_id},
                          details={"after": start}))
    bearer = bearer_of(request) or ""
    sessions: sessionmaker[UnitOfWork] = request.app.state.sessions
    return StreamingResponse(_stream(request, sessions, by.liaison_id, bearer, after=start),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
