"""What every page of the desk uses: sections, rendering, forms, the unlocked client, flashes.

A **section** is one role's pages: a module ``client/desk/sections/<key>.py``
defining ``section = Section(...)`` with its routes (all under ``/<key>``),
and a templates folder ``client/desk/templates/<key>/``. The sections are
listed once, in :data:`client.desk.sections.SECTIONS`; the navigation shows
a section to the liaisons whose role it names (``roles``), or to everyone,
locked or not, when it needs no unlock (the court's). docs/desk.md, "Adding
a page", walks through it.

Handlers are ``async``; anything that blocks (the SDK talks to the server,
Argon2 opens the key file) goes through :func:`blocking`. A page gets the
unlocked SDK client from :func:`unlocked_client`; when the desk is locked
that raises :class:`~client.unlock.Locked`, which the app turns into a
redirect to the unlock page (and back afterwards).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute

from client.desk.i18n import LANGUAGES, current_language
from client.desk.security import CSRF_FIELD, FORM_LIMIT, DeskSession
from client.sdk import Client

if TYPE_CHECKING:
    from client.desk.app import Desk

P = ParamSpec("P")
R = TypeVar("R")

PROSECUTOR, COORDINATOR, AUDITOR = "prosecutor", "coordinator", "auditor"


@dataclass(frozen=True)
class Section:
    """One role's pages: its key (URL prefix, templates folder), title, roles and routes."""

    key: str
    title: str
    """A message id marked with ``N_``; translated where it is shown."""
    routes: Sequence[BaseRoute]
    roles: frozenset[str] = frozenset()
    """Roles that see the section in the navigation; empty: every liaison."""
    needs_unlock: bool = True
    """False for pages that use no key and no server (the court's)."""

    @property
    def home(self) -> str:
        """The section's first page."""
        return f"/{self.key}/"


@dataclass
class FormData:
    """A url-encoded form: its fields (first value of each) and every value of each."""

    values: dict[str, list[str]] = field(default_factory=dict)

    def get(self, name: str, default: str = "") -> str:
        """The first value of ``name``, stripped of surrounding white space."""
        return (self.values.get(name) or [default])[0].strip()

    def raw(self, name: str) -> str:
        """The first value of ``name`` as sent (passphrases keep their spaces)."""
        return (self.values.get(name) or [""])[0]

    def all(self, name: str) -> list[str]:
        """Every value of ``name``."""
        return list(self.values.get(name, []))


def desk(request: Request) -> Desk:
    """The desk this request is served by."""
    found: Desk = request.app.state.desk
    return found


def session_of(request: Request) -> DeskSession:
    """The browser session the guard let in."""
    found: DeskSession = request.scope["state"]["desk_session"]
    return found


async def blocking(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Run ``fn`` in a worker thread (SDK calls, key derivation): the event loop stays free."""
    return await run_in_threadpool(fn, *args, **kwargs)


async def read_form(request: Request) -> FormData:
    """The url-encoded form of a POST (multipart bodies are streamed by their pages).

    Read once per request and kept: a wrapper (:func:`client.desk.once.acts_once`)
    and the handler it wraps both read it.
    """
    state = request.scope.setdefault("state", {})
    if isinstance(state.get("desk_form"), FormData):
        found: FormData = state["desk_form"]
        return found
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > FORM_LIMIT:
            break
    values = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    values.pop(CSRF_FIELD, None)
    form = state["desk_form"] = FormData(values)
    return form


def unlocked_client(request: Request) -> Client:
    """The SDK client of the unlocked profile; raises :class:`~client.unlock.Locked`."""
    return desk(request).agent.client()


def flash(request: Request, message: str, *, kind: str = "info") -> None:
    """Show ``message`` (already translated) on the next page this browser renders."""
    desk(request).flashes.setdefault(session_of(request).id, []).append((kind, message))


def redirect(path: str) -> Response:
    """See-other to ``path`` (after a POST); htmx follows it as a full page load."""
    response = RedirectResponse(path, status_code=303)
    response.headers["HX-Redirect"] = path
    return response


def render(request: Request, template: str, context: Mapping[str, Any] | None = None, *,
           status: int = 200, section: str | None = None) -> HTMLResponse:
    """Render ``template`` in the base layout's context (language, navigation, CSRF...).

    ``form_token(path)`` issues a form's one-time token (the ``once`` macro).

    ``section`` names the navigation entry marked current (default: the
    template's folder).
    """
    the_desk = desk(request)
    session = session_of(request)
    base = {
        "request": request,
        "lang": current_language(),
        "languages": LANGUAGES,
        "csrf_token": session.csrf,
        "csrf_field": CSRF_FIELD,
        "form_token": lambda purpose: the_desk.forms.issue(session.id, purpose),
        "current": section or template.split("/")[0],
        "path": request.url.path,
        "flashes": the_desk.flashes.pop(session.id, []),
        **the_desk.chrome(),
    }
    body = the_desk.templates.get_template(template).render({**base, **(context or {})})
    return HTMLResponse(body, status_code=status)
