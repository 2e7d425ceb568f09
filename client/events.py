"""Real-time notifications: the ``GET /v1/events`` server-sent events stream.

The server tells a liaison of new packets, replies, receipts and share
requests addressed to them (ids and metadata, never content). Each event's id
is the ledger index of the action behind it, so resuming after the last id
seen never skips one. :meth:`EventsAPI.follow` keeps a stream open for as
long as the caller iterates: when the server ends it (the token expired or
was revoked) it logs in again, and when the connection breaks it waits and
reconnects, each time resuming after the last event it yielded.

:func:`parse_sse` is the event-stream parser of the WHATWG HTML standard
(section 9.2, "server-sent events"), reduced to what Cadena's server sends.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from client.errors import NetworkError, ProtocolError
from client.session import ApiSession

END_EVENT = "end"
STREAM_READ_TIMEOUT = 60.0  # the server sends a keep-alive comment every 15 s


@dataclass(frozen=True)
class SseEvent:
    """One dispatched server-sent event (``id`` is None when the event had none)."""

    event: str
    data: str
    id: str | None = None


@dataclass(frozen=True)
class Notification:
    """A Cadena event: what happened (``kind``), to which packet, at which ledger index."""

    index: int
    kind: str
    packet_id: str
    data: Mapping[str, Any] = field(default_factory=dict)


def parse_sse(lines: Iterable[str]) -> Iterator[SseEvent]:
    """Dispatch the events of an event stream given line by line (without line ends).

    Comment lines (``:``) are ignored, ``data`` lines are joined with a line
    feed, a blank line dispatches; an event without data is not dispatched.
    """
    name, event_id = "", None
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield SseEvent(name or "message", "\n".join(data), event_id)
            name, data, event_id = "", [], None
            continue
        if line.startswith(":"):
            continue
        key, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if key == "event":
            name = value
        elif key == "data":
            data.append(value)
        elif key == "id" and "\0" not in value:
            event_id = value


def notification(event: SseEvent) -> Notification:
    """The Cadena notification an event carries; raise ``ProtocolError`` if malformed."""
    try:
        index = int(event.id or "")
        body = json.loads(event.data)
    except ValueError as exc:
        raise ProtocolError(f"malformed {event.event!r} event from the server") from exc
    if not isinstance(body, dict) or not isinstance(body.get("packet_id"), str):
        raise ProtocolError(f"{event.event!r} event without a packet id")
    return Notification(index=index, kind=event.event, packet_id=body["packet_id"], data=body)


class EventsAPI:
    """``GET /v1/events``, as one stream or followed across reconnects."""

    def __init__(self, session: ApiSession, *, sleep: Callable[[float], None] = time.sleep
                 ) -> None:
        """Stream over ``session``; ``sleep`` waits before a reconnect (tests pass their own)."""
        self._session = session
        self._sleep = sleep

    def stream(self, after: int | None = None) -> Iterator[Notification]:
        """Notifications after ledger index ``after``, until the server ends the stream."""
        headers = {"Accept": "text/event-stream"}
        if after is not None:
            headers["Last-Event-ID"] = str(after)
        with self._session.stream("/v1/events", headers=headers,
                                  read_timeout=STREAM_READ_TIMEOUT) as response:
            try:
                for event in parse_sse(response.iter_lines()):
                    if event.event == END_EVENT:
                        return
                    yield notification(event)
            except httpx.TransportError as exc:
                raise NetworkError(f"the event stream broke: {exc}") from exc

    def follow(self, after: int | None = None, *, connections: int | None = None,
               retry_seconds: float = 2.0) -> Iterator[Notification]:
        """Notifications for as long as the caller iterates, resuming across reconnects.

        ``connections`` bounds how many streams are opened (None: no bound).
        A stream the server ended is reopened after a fresh login; a broken
        connection after ``retry_seconds``. Refusals (a revoked key, a lapsed
        clearance) are raised, not retried.
        """
        opened = 0
        while connections is None or opened < connections:
            opened += 1
            try:
                for item in self.stream(after):
                    after = item.index
                    yield item
            except NetworkError:
                if connections is not None and opened >= connections:
                    raise
                self._sleep(retry_seconds)
                continue
            self._session.forget_token()  # the server ended it: the token no longer serves
