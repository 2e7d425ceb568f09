"""Forms acted on once: each rendered form carries a token that its first POST spends.

The CSRF token of :mod:`client.desk.security` proves that a request comes from
a page of this desk; it is one value for the whole session, so a double click
on Send, the same form sent from two tabs, or the browser's "resend the form?"
prompt all carry it and all pass. A **form token** is one value per rendered
form (docs/adr/0036-forms-acted-on-once.md):

- :meth:`FormTokens.issue` makes it when a page renders the form (the
  ``once`` macro of ``templates/_macros.html``), bound to the browser session
  and the form's purpose: the path it is posted to.
- :func:`acts_once` wraps the form's handler: the token is taken (checked and
  marked taken in one step, under the lock) before the handler runs. A second
  POST with it does not run the handler: it waits for the first to end, then
  shows that the form was sent already, with a link to the page the first
  led to. An unknown, expired or other form's token shows the form again
  (``again``), whose page carries a fresh token.
- A first POST that acted on nothing (its handler answered 4xx: the form had
  errors, the server refused) gives the token back, so the same form can be
  corrected and sent; one that failed (an exception: it may have acted) keeps
  it spent.

Each session keeps at most :data:`PER_SESSION` tokens, issued or spent,
dropping the oldest first: a page reloaded in a loop grows nothing.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum

from starlette.requests import Request
from starlette.responses import Response

from client.desk.i18n import _
from client.desk.pages import FormData, desk, flash, read_form, redirect, render, session_of

ONCE_FIELD = "form_token"
"""The form field that carries a form token."""
ONCE_TTL = 12 * 3600.0
"""Seconds a rendered form stays sendable (a working day, a message written slowly)."""
PER_SESSION = 256
"""Tokens kept per browser session; a page with a form per row issues one per row."""
SWEEP_EVERY = 64
"""Tokens issued between two sweeps of expired tokens and of the sessions left with none."""

Endpoint = Callable[[Request], Awaitable[Response]]
Again = Callable[[Request, FormData], Awaitable[Response]]


class Taking(Enum):
    """What :meth:`FormTokens.take` found."""

    FRESH = "fresh"
    """Never taken: this request acts, then calls :meth:`FormTokens.finish`."""
    TAKEN = "taken"
    """Taken by an earlier request (maybe still running): this one must not act."""
    REFUSED = "refused"
    """Unknown, expired, or issued for another form or session."""


@dataclass
class Form:
    """One rendered form's token: what it is for, until when, and what sending it led to."""

    purpose: str
    expires: float
    taken: bool = False
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the request that took it ended (acted, failed, or gave it back)."""
    led_to: str | None = None
    """Where the first request sent the browser (its See Other), once it ended."""


class FormTokens:
    """The form tokens of every browser session of one desk, kept in its process."""

    def __init__(self, *, ttl: float = ONCE_TTL, per_session: int = PER_SESSION,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        """No token yet; ``monotonic`` is the clock of expiry (tests move it)."""
        self._ttl = ttl
        self._per_session = per_session
        self._monotonic = monotonic
        self._forms: dict[str, OrderedDict[str, Form]] = {}
        self._lock = threading.Lock()
        self._issued = 0

    def issue(self, session: str, purpose: str) -> str:
        """A new token (192 random bits) for one form of ``session`` posted to ``purpose``."""
        token = secrets.token_urlsafe(24)
        with self._lock:
            forms = self._forms.setdefault(session, OrderedDict())
            forms[token] = Form(purpose, self._monotonic() + self._ttl)
            while len(forms) > self._per_session:
                forms.popitem(last=False)
            self._issued += 1
            if self._issued % SWEEP_EVERY == 0:
                self._sweep()
        return token

    def _sweep(self) -> None:
        """Drop expired tokens, and the sessions left with none (a desk runs for weeks, and
        every browser session that opened a form would otherwise stay). Under the lock."""
        now = self._monotonic()
        for session in list(self._forms):
            forms = self._forms[session]
            for token in [t for t, form in forms.items() if form.expires <= now]:
                del forms[token]
            if not forms:
                del self._forms[session]

    def sessions(self) -> int:
        """How many browser sessions hold tokens."""
        with self._lock:
            return len(self._forms)

    def take(self, session: str, purpose: str, token: str) -> tuple[Taking, Form | None]:
        """Take ``token`` for ``purpose``: check and mark it in one step, under the lock."""
        with self._lock:
            forms = self._forms.get(session, OrderedDict())
            form = forms.get(token)
            if form is None or form.purpose != purpose:
                return Taking.REFUSED, None
            if form.expires <= self._monotonic():
                del forms[token]
                return Taking.REFUSED, None
            if form.taken:
                return Taking.TAKEN, form
            form.taken = True
            form.ended.clear()
            return Taking.FRESH, form

    def finish(self, form: Form, led_to: str | None) -> None:
        """The request that took ``form`` acted (or failed): it stays taken."""
        with self._lock:
            form.led_to = led_to
        form.ended.set()

    def give_back(self, form: Form) -> None:
        """The request that took ``form`` acted on nothing: the form may be sent again."""
        with self._lock:
            form.taken = False
        form.ended.set()

    def held(self, session: str) -> int:
        """How many tokens ``session`` holds (issued or taken, not yet dropped)."""
        with self._lock:
            return len(self._forms.get(session, ()))


def acts_once(again: Again) -> Callable[[Endpoint], Endpoint]:
    """Wrap a form's POST handler so that one rendered form acts at most once.

    ``again`` shows the form again, with what was sent (already read, in its
    :class:`~client.desk.pages.FormData`), when the token is refused; a
    message saying why is flashed first. For url-encoded forms (a multipart
    body is streamed by its page and is not read here). A GET of the same
    handler passes through.
    """
    def wrap(handler: Endpoint) -> Endpoint:
        @functools.wraps(handler)  # __wrapped__: the routes' test finds who acts once
        async def once(request: Request) -> Response:
            if request.method != "POST":  # a route that also shows the form (GET)
                return await handler(request)
            form = await read_form(request)
            tokens = desk(request).forms
            session, purpose = session_of(request).id, request.url.path
            while True:
                taking, taken = tokens.take(session, purpose, form.get(ONCE_FIELD))
                if taking is Taking.REFUSED or taken is None:
                    flash(request, _("This form was out of date: check it and send it again."),
                          kind="error")
                    return await again(request, form)
                if taking is Taking.FRESH:
                    return await _act(handler, request, tokens, taken)
                if taken.ended.is_set():  # acted (or failed): never a second time
                    return _already_sent(request, taken.led_to)
                # still acting: wait for its end, then look again (it may have been given
                # back, acting on nothing, and be free or taken by another waiter)
                await taken.ended.wait()

        return once
    return wrap


async def _act(handler: Endpoint, request: Request, tokens: FormTokens, form: Form) -> Response:
    led_to: str | None = None
    try:
        response = await handler(request)
    except BaseException:  # it may have acted (or still be acting in a worker thread)
        tokens.finish(form, None)
        raise
    if 400 <= response.status_code < 500:
        tokens.give_back(form)
    else:
        if 300 <= response.status_code < 400:
            led_to = response.headers.get("location")
        tokens.finish(form, led_to)
    return response


def _already_sent(request: Request, led_to: str | None) -> Response:
    section = request.url.path.split("/")[1]
    link = led_to or (f"/{section}/" if section else "/")
    return render(request, "already_sent.html", {"link": link, "led_to": led_to is not None},
                  status=409, section=section)


def show_again_at(page: Callable[[Request], str]) -> Again:
    """An ``again`` that sends the browser back to the page that holds the form."""
    async def again(request: Request, form: FormData) -> Response:
        return redirect(page(request))
    return again
