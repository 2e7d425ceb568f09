"""Admission: bounds on what one process serves at once, decided before any thread or connection.

DESIGN invariant 9: no single client can starve the service. Before a request
takes a worker thread or a database connection, :class:`AdmissionControl`
(plain ASGI, on the event loop) counts it against:

- the process: at most ``max_requests_in_flight`` requests and
  ``max_streams_in_flight`` event streams; past it, 503 ``overloaded`` at
  once (load shedding; not a refusal of anyone, so not in the ledger);
- its caller: a liaison (a bearer token this process has already
  authenticated) may have ``max_requests_per_liaison`` requests,
  ``max_streams_per_liaison`` streams and ``max_uploads_per_liaison``
  uploads in flight; any other caller (no token, or one the process has not
  seen yet) is bounded per address by ``max_requests_per_address``. Past
  its bound the caller gets 429 ``too-many-concurrent`` at once, counted
  into the ledger's refusal summary (``app.ledger.summaries``).

Knowing the caller here costs no database read: a token is recognised by
the SHA-256 of the whole bearer string, remembered once the request thread
authenticated it (:meth:`Admission.remember`). A guessed or stolen token id
without its secret matches nothing, so nobody can spend another liaison's
bound.

Request bodies must keep coming: nothing for ``body_idle_timeout_seconds``,
or an average under ``upload_min_bytes_per_second`` once
``upload_rate_grace_seconds`` have passed, ends the request with 408
``request-timeout`` (a trickling upload holds a slot, never a thread or a
connection, but it must not hold the slot for ever).

An admitted request's thread is then taken by its caller's fair share of the
process's request threads (``app.fairshare``), not in arrival order.

``/healthz`` and the public checkpoint and key are never bounded: they
answer on the event loop during any burst. The bounds hold per process;
docs/operations.md says what several workers and hosts make of them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import PROBLEM_BASE, PROBLEM_MEDIA_TYPE
from app.fairshare import FairShare, sharing
from app.ledger import RefusalSummaries
from app.settings import Settings

UNBOUNDED_PATHS = frozenset({"/healthz", "/v1/ledger/checkpoint", "/v1/ledger/key"})
REMEMBERED_TOKENS = 10_000


@dataclass(frozen=True)
class Ticket:
    """An admitted request: what it was counted against (given back by :meth:`leave`)."""

    kind: str
    caller: str
    counted: str  # the bound it was counted against: its kind, or "request" for an address


@dataclass(frozen=True)
class Verdict:
    """A refused request: the status, problem code and what the caller is told."""

    status: int
    code: str
    title: str
    detail: str
    caller: str


def _caller_key(liaison: str | None, address: str) -> str:
    return f"liaison:{liaison}" if liaison is not None else f"address:{address}"


class Admission:
    """The in-flight counts of one process and the tokens it has already authenticated."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._in_flight: Counter[tuple[str, str]] = Counter()
        self.requests = 0
        self.streams = 0
        self._tokens: OrderedDict[bytes, tuple[str, datetime]] = OrderedDict()
        self._lock = threading.Lock()  # remember() runs in request threads

    def remember(self, bearer: str, liaison_id: str, expires_at: datetime) -> None:
        """Note that ``bearer`` authenticated as ``liaison_id`` (until it expires)."""
        digest = hashlib.sha256(bearer.encode()).digest()
        with self._lock:
            self._tokens[digest] = (liaison_id, expires_at)
            self._tokens.move_to_end(digest)
            if len(self._tokens) > REMEMBERED_TOKENS:
                self._tokens.popitem(last=False)

    def identify(self, bearer: str | None) -> str | None:
        """The liaison of a token this process authenticated and that has not expired."""
        if not bearer:
            return None
        digest = hashlib.sha256(bearer.encode()).digest()
        with self._lock:
            known = self._tokens.get(digest)
        if known is None or known[1] <= datetime.now(UTC):
            return None
        return known[0]

    def _bound(self, kind: str, liaison: str | None) -> int:
        s = self.settings
        if liaison is None:
            return s.max_requests_per_address
        return {"stream": s.max_streams_per_liaison, "upload": s.max_uploads_per_liaison}.get(
            kind, s.max_requests_per_liaison)

    def enter(self, kind: str, liaison: str | None, address: str) -> Ticket | Verdict:
        """Admit one request of ``kind`` or say why not (called on the event loop only)."""
        caller = _caller_key(liaison, address)
        if kind == "stream" and self.streams >= self.settings.max_streams_in_flight or \
                kind != "stream" and self.requests >= self.settings.max_requests_in_flight:
            return Verdict(503, "overloaded", "Service overloaded",
                           "the server is serving all it can; retry in a moment", caller)
        counted = "request" if liaison is None else kind
        if self._in_flight[(caller, counted)] >= self._bound(kind, liaison):
            what = {"stream": "event streams", "upload": "uploads"}.get(counted, "requests")
            return Verdict(429, "too-many-concurrent", "Too many requests at once",
                           f"too many {what} in flight at once for this caller; "
                           "wait for one to finish", caller)
        self._in_flight[(caller, counted)] += 1
        if kind == "stream":
            self.streams += 1
        else:
            self.requests += 1
        return Ticket(kind, caller, counted)

    def leave(self, ticket: Ticket) -> None:
        """Give back what :meth:`enter` counted."""
        key = (ticket.caller, ticket.counted)
        self._in_flight[key] -= 1
        if self._in_flight[key] <= 0:
            del self._in_flight[key]
        if ticket.kind == "stream":
            self.streams -= 1
        else:
            self.requests -= 1

    @property
    def busy(self) -> bool:
        """Whether requests are queueing (the public checkpoint is then served from memory)."""
        return self.requests >= 8


def _kind(scope: Scope) -> str:
    path, method = str(scope["path"]), scope["method"]
    if path == "/v1/events":
        return "stream"
    if method == "PUT" and path.startswith("/v1/blobs/"):
        return "upload"
    return "request"


def _bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


def _has_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return value.strip() not in (b"", b"0")
        if name == b"transfer-encoding":
            return True
    return False


def _address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class _SlowBody(Exception):
    """The request body stalled or trickled below the minimum rate."""


async def send_problem(send: Send, *, status: int, code: str, title: str, detail: str,
                       path: str, headers: list[tuple[bytes, bytes]] | None = None,
                       **extensions: Any) -> None:
    """Answer with an RFC 9457 problem from plain ASGI (no application involved)."""
    body = json.dumps({"type": PROBLEM_BASE + code, "title": title, "status": status,
                       "detail": detail, "instance": path, **extensions}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
        (b"content-length", str(len(body)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


class AdmissionControl:
    """ASGI middleware: admit, refuse (429/503) or time out each request (module docstring)."""

    def __init__(self, app: ASGIApp, admission: Admission, summaries: RefusalSummaries,
                 share: FairShare) -> None:
        self.app = app
        self.admission = admission
        self.summaries = summaries
        self.share = share

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve ``scope`` if the process and its caller are within their bounds."""
        if scope["type"] != "http" or scope["path"] in UNBOUNDED_PATHS:
            await self.app(scope, receive, send)
            return
        kind = _kind(scope)
        liaison = self.admission.identify(_bearer(scope))
        verdict = self.admission.enter(kind, liaison, _address(scope))
        if isinstance(verdict, Verdict):
            await self._refuse(scope, send, verdict, liaison)
            return
        pace = _Pace(receive, self.admission.settings)
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            if pace.slow:  # the application's answer to a failed body read is replaced
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            with sharing(self.share, verdict.caller):  # its thread by its caller's share
                await self.app(scope, pace.receive, watched)
        except _SlowBody:
            pass
        finally:
            self.admission.leave(verdict)
        if pace.slow and not started:
            await send_problem(send, status=408, code="request-timeout", title="Request timeout",
                               path=str(scope["path"]),
                               detail="the request body stalled or came too slowly; "
                                      "nothing was kept", headers=[(b"connection", b"close")])

    async def _refuse(self, scope: Scope, send: Send, verdict: Verdict,
                      liaison: str | None) -> None:
        extensions: dict[str, Any] = {}
        if verdict.status == 429:  # a refusal of the caller: counted into the ledger
            subject_type, subject_id = verdict.caller.split(":", 1)
            extensions["ledger_summary"] = self.summaries.count(
                subject_type=subject_type, subject_id=subject_id, reason=verdict.code,
                action=f"{scope['method']} {scope['path']}"[:120])
        headers = [(b"retry-after", b"1")]
        if _has_body(scope):  # unread: the connection cannot carry another request
            headers.append((b"connection", b"close"))
        await send_problem(send, status=verdict.status, code=verdict.code, title=verdict.title,
                           detail=verdict.detail, path=str(scope["path"]), headers=headers,
                           **extensions)


class _Pace:
    """A ``receive`` that raises :class:`_SlowBody` while the body stalls or trickles."""

    def __init__(self, receive: Receive, settings: Settings) -> None:
        self._receive = receive
        self._settings = settings
        self._began = time.monotonic()
        self._received = 0
        self._done = False
        self.slow = False

    async def receive(self) -> Message:
        """The next message; a body must keep coming (module docstring)."""
        if self._done:  # the body is in: waiting for a disconnect may take for ever
            return await self._receive()
        try:
            async with asyncio.timeout(self._settings.body_idle_timeout_seconds):
                message = await self._receive()
        except TimeoutError:
            self.slow = True
            raise _SlowBody from None
        if message["type"] != "http.request" or not message.get("more_body", False):
            self._done = True
            return message
        self._received += len(message.get("body", b""))
        elapsed = time.monotonic() - self._began
        if elapsed > self._settings.upload_rate_grace_seconds and \
                self._received < self._settings.upload_min_bytes_per_second * elapsed:
            self.slow = True
            raise _SlowBody
        return message
