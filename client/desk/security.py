"""The desk's guard: who may talk to the local port, and what every answer carries.

The desk listens on 127.0.0.1, where every program of every user of the
machine, and any web page the browser opens, can reach it. So, in order, for
every request (:class:`Guard`, an ASGI middleware around the whole app):

1. **Host**: only ``127.0.0.1:<port>`` and ``localhost:<port>`` (a page of
   another site whose name was rebound to 127.0.0.1, DNS rebinding, sends its
   own name and is refused).
2. **Launch**: ``cadena desk`` prints ``/launch/<token>``; the token is
   single-use and expires after :data:`LAUNCH_TTL` seconds (the command line
   is visible in the process list), and is exchanged for a session cookie
   (HttpOnly, SameSite=Strict, path /) and a redirect that drops it from the
   address bar.
3. **Session**: every other request needs that cookie.
4. **CSRF**: every state-changing request (not GET, HEAD or OPTIONS) must
   carry the session's CSRF token, in the ``X-CSRF-Token`` header (htmx and
   scripts: ``static/desk.js`` adds it) or as the form field ``csrf_token``;
   in a multipart form that field must come first, so that the guard reads
   only the form's first part before the page sees the rest as a stream. An
   ``Origin`` naming another site is refused too.
5. **Headers** on every answer: a Content-Security-Policy allowing only the
   desk's own scripts, styles, images and connections (no inline script or
   style, no other origin), no framing, no referrer, no sniffing, and
   ``Cache-Control: no-store`` on everything but the vendored static files.
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from contextvars import ContextVar
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

from client.desk.i18n import LANGUAGES, N_, _, negotiate, set_language

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Refuse = Callable[[int, str, str], tuple[bytes, str]]
"""Renders a refusal page: (status, title, detail) -> (body, content type)."""

LAUNCH_TTL = 60.0
"""Seconds a launch token stays valid (it is seen in the process list)."""
COOKIE = "cadena_desk"
LANGUAGE_COOKIE = "cadena_lang"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = b"x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FORM_LIMIT = 1 << 20
"""Largest url-encoded form body read whole (a multipart form streams past its first part)."""
FIRST_PART_LIMIT = 16 << 10
LAUNCH_PATH = "/launch/"
STATIC_PREFIX = "/static/"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; font-src 'none'; form-action 'self'; frame-ancestors 'none'; "
       "base-uri 'none'; object-src 'none'")
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
)


_html_wanted: ContextVar[bool] = ContextVar("desk_html_wanted", default=True)
"""Whether this request's client reads HTML (a browser) or wants a problem document."""


@dataclass(frozen=True)
class DeskSession:
    """One browser's session with the desk: its cookie value and its CSRF token."""

    id: str
    csrf: str


class Sessions:
    """Launch tokens (single use, short-lived) and the sessions they opened."""

    def __init__(self, *, ttl: float = LAUNCH_TTL,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        """Empty: :meth:`launch_token` makes the first way in."""
        self._ttl = ttl
        self._monotonic = monotonic
        self._launch: dict[str, float] = {}
        self._sessions: dict[str, DeskSession] = {}
        self._lock = threading.Lock()

    def launch_token(self) -> str:
        """A new launch token, valid once within the TTL."""
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._launch[token] = self._monotonic() + self._ttl
        return token

    def redeem(self, token: str) -> DeskSession | None:
        """The new session a valid launch token opens (the token is spent either way)."""
        with self._lock:
            expiry = self._launch.pop(token, None)
            now = self._monotonic()
            self._launch = {t: e for t, e in self._launch.items() if e > now}
            if expiry is None or expiry <= now:
                return None
            session = DeskSession(secrets.token_urlsafe(32), secrets.token_urlsafe(32))
            self._sessions[session.id] = session
            return session

    def get(self, cookie: str | None) -> DeskSession | None:
        """The session of a cookie value, if it is one."""
        if not cookie:
            return None
        with self._lock:
            for known, session in self._sessions.items():
                if hmac.compare_digest(known, cookie):
                    return session
        return None


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return {k.lower(): v for k, v in scope.get("headers", [])}


def _cookies(headers: dict[bytes, bytes]) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(headers.get(b"cookie", b"").decode("latin-1"))
    except Exception:  # noqa: BLE001 - a malformed cookie header is no cookie
        return {}
    return {k: m.value for k, m in jar.items()}


class Guard:
    """The ASGI middleware that applies the rules of this module to every request."""

    def __init__(self, app: ASGIApp, *, sessions: Sessions, port: int, refuse: Refuse,
                 default_language: Callable[[], str | None] = lambda: None) -> None:
        """Guard ``app`` served on 127.0.0.1:``port``."""
        self.app = app
        self.sessions = sessions
        self.port = port
        self.hosts = {f"127.0.0.1:{port}".encode(), f"localhost:{port}".encode()}
        self.origins = {b"http://" + host for host in self.hosts}
        self.refuse = refuse
        self.default_language = default_language

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the request, then pass it on with the security headers added."""
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            return  # no websockets
        headers = _headers(scope)
        _html_wanted.set(b"text/html" in headers.get(b"accept", b""))
        cookies = _cookies(headers)
        chosen = cookies.get(LANGUAGE_COOKIE, "")
        set_language(chosen if chosen in LANGUAGES else self.default_language() or negotiate(
            headers.get(b"accept-language", b"").decode("latin-1")))
        send = _with_headers(send, static=scope["path"].startswith(STATIC_PREFIX))
        if headers.get(b"host") not in self.hosts:
            await self._refuse(send, 421, N_("Wrong address"), N_(
                "The desk answers only at 127.0.0.1 or localhost on its port."))
            return
        if scope["path"].startswith(LAUNCH_PATH):
            await self._launch(scope["path"][len(LAUNCH_PATH):], send)
            return
        if scope["path"].startswith(STATIC_PREFIX) and scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)  # vendored files: public, hold no secret
            return
        session = self.sessions.get(cookies.get(COOKIE))
        if session is None:
            await self._refuse(send, 403, N_("Open the desk from its link"), N_(
                "Start the desk with cadena desk and open the link it prints."))
            return
        scope.setdefault("state", {})["desk_session"] = session
        if scope["method"] not in SAFE_METHODS:
            # With Referrer-Policy no-referrer the browser sends "Origin: null" for its
            # own forms: the CSRF token decides then; a named other origin is refused.
            origin = headers.get(b"origin")
            if origin is not None and origin != b"null" and origin not in self.origins:
                await self._refuse(send, 403, N_("Refused"),
                                   N_("The request came from another site."))
                return
            checked = await _csrf(headers, receive, session)
            if checked is None:
                await self._refuse(send, 403, N_("Refused"), N_(
                    "The form is out of date: reload the page and try again."))
                return
            receive = checked
        await self.app(scope, receive, send)

    async def _launch(self, token: str, send: Send) -> None:
        session = self.sessions.redeem(token)
        if session is None:
            await self._refuse(send, 403, N_("This link was used or has expired"), N_(
                "Press Enter in the terminal where the desk runs for a new link, "
                "and open it at once."))
            return
        cookie = (f"{COOKIE}={session.id}; HttpOnly; SameSite=Strict; Path=/").encode()
        await send({"type": "http.response.start", "status": 303,
                    "headers": [(b"location", b"/"), (b"set-cookie", cookie),
                                (b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})

    async def _refuse(self, send: Send, status: int, title: str, detail: str) -> None:
        if _html_wanted.get():
            body, content_type = self.refuse(status, title, detail)
        else:  # a program, not a browser: an RFC 9457 problem
            body = json.dumps({"type": "about:blank", "title": _(title), "status": status,
                               "detail": _(detail)}).encode()
            content_type = "application/problem+json"
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", content_type.encode()),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def _with_headers(send: Send, *, static: bool) -> Send:
    cache = b"private, max-age=3600" if static else b"no-store"

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            kept = [(k, v) for k, v in message.get("headers", [])
                    if k.lower() not in {b"cache-control", *(h for h, _ in SECURITY_HEADERS)}]
            message["headers"] = [*kept, *SECURITY_HEADERS, (b"cache-control", cache)]
        await send(message)

    return wrapped


_FIRST_PART = re.compile(
    rb'\A--(?P<boundary>[^\r\n]+)\r\ncontent-disposition: *form-data; *name="csrf_token"'
    rb"\r\n\r\n(?P<value>[A-Za-z0-9_\-]*)\r\n--", re.IGNORECASE)


async def _csrf(headers: dict[bytes, bytes], receive: Receive,
                session: DeskSession) -> Receive | None:
    """``receive`` replaying what was read, if the request carries the CSRF token; else None."""
    expected = session.csrf.encode()
    given = headers.get(CSRF_HEADER)
    if given is not None:
        return receive if hmac.compare_digest(given, expected) else None
    kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
    if kind == b"application/x-www-form-urlencoded":
        body, more = await _read(receive, lambda b: False, FORM_LIMIT)
        if more:
            return None
        values = parse_qs(body.decode("latin-1")).get(CSRF_FIELD, [])
        token = values[0].encode() if values else b""
    elif kind == b"multipart/form-data":
        body, more = await _read(receive, lambda b: _FIRST_PART.match(b) is not None,
                                 FIRST_PART_LIMIT)
        match = _FIRST_PART.match(body)
        token = match.group("value") if match else b""
    else:
        return None
    if not hmac.compare_digest(token, expected):
        return None
    return _replay(body, more, receive)


async def _read(receive: Receive, enough: Callable[[bytes], bool],
                limit: int) -> tuple[bytes, bool]:
    body, more = b"", True
    while more and len(body) <= limit and not enough(body):
        message = await receive()
        if message["type"] != "http.request":
            return body, False
        body += message.get("body", b"")
        more = bool(message.get("more_body", False))
    return body, more


def _replay(body: bytes, more: bool, receive: Receive) -> Receive:
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": more}
        return await receive()

    return replay
