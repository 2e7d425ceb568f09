"""The desk's application: one :class:`Desk` per process, its Starlette app, its templates.

:func:`create_app` builds the ASGI app that ``cadena desk`` serves on
127.0.0.1: the shell's routes (home, unlock, lock, language, first run), every
section of :data:`client.desk.sections.SECTIONS` under its prefix, the
vendored static files, and the guard of :mod:`client.desk.security` around
it all. Errors become pages: a locked desk sends the reader to the unlock
page, a refusal of the server or a bad set-up shows its problem.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from client.desk import i18n
from client.desk.i18n import N_, _
from client.desk.once import FormTokens
from client.desk.pages import redirect, render
from client.desk.sections import SECTIONS, shell
from client.desk.security import Guard, Sessions
from client.errors import ClientError, NetworkError, ProblemError, UsageError
from client.profile import Profile
from client.unlock import DEFAULT_IDLE, KeyAgent, Locked
from crypto import LiaisonKeys

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
CERTIFICATE_LIMIT = 32 << 20
"""Largest certificate file the court page reads (in memory)."""
EVIDENCE_LIMIT = 8 << 30
"""Largest total of evidence files the court page hashes as they arrive (never stored)."""

ROLE_NAMES = {"prosecutor": N_("Prosecutor"), "coordinator": N_("Coordinator"),
              "auditor": N_("Auditor")}
ALERTS = {
    "rogue-key": (N_("A key you do not hold appeared under your name"),
                  N_("What is sent to you may be readable by someone else, and they may sign "
                     "as you. Tell the centre's coordinators and auditors now.")),
    "no-trust-roots": (N_("No trust roots are set"),
                       N_("No contact's key can be proven against the ledger, so none is used. "
                          "Set the trust roots the centre published.")),
    "unchecked": (N_("Your keys could not be checked against the ledger"),
                  N_("The check runs again at the next login.")),
}


@dataclass
class DeskOptions:
    """How one desk runs: its profile, port, idle lock, and the first run's key cost."""

    profile: Profile
    port: int
    idle: float = DEFAULT_IDLE
    kdf: str = "sensitive"
    """Argon2id cost of a key file made on first run: sensitive, moderate or interactive."""
    monotonic: Callable[[], float] = time.monotonic
    """The clock of idle times (tests move it by hand)."""


class Desk:
    """The state of one running desk: profile, key agent, sessions, form tokens, flashes..."""

    def __init__(self, options: DeskOptions) -> None:
        """A desk for ``options.profile``, locked, with no browser session yet."""
        self.options = options
        self.profile = options.profile
        self.agent = KeyAgent(options.profile, idle=options.idle, monotonic=options.monotonic)
        self.sessions = Sessions()
        self.forms = FormTokens()
        self.sections = SECTIONS
        self.flashes: dict[str, list[tuple[str, str]]] = {}
        self._pending: tuple[LiaisonKeys, float] | None = None
        self._pending_lock = threading.Lock()
        self.templates = _environment()

    def hold_new_keys(self, keys: LiaisonKeys) -> None:
        """Keep keys made on first run until the set-up ends (then the agent takes them)."""
        now = self.options.monotonic()
        with self._pending_lock:
            self._pending = (keys, now)

    def take_new_keys(self) -> LiaisonKeys | None:
        """The keys made on first run, if still held (they are held once)."""
        with self._pending_lock:
            pending, self._pending = self._pending, None
        return pending[0] if pending else None

    def expire(self) -> None:
        """Drop keys idle for too long: the agent's, and those of a set-up left half way."""
        self.agent.expire()
        # The set-up takes the keys on a request's thread: they are checked and dropped under
        # the lock, or the watcher could find them gone half way and die of it.
        now = self.options.monotonic()
        with self._pending_lock:
            if self._pending and now - self._pending[1] > self.options.idle:
                self._pending = None

    def launch_url(self) -> str:
        """A fresh single-use launch link (valid for a minute)."""
        return f"http://127.0.0.1:{self.options.port}/launch/{self.sessions.launch_token()}"

    def language(self) -> str | None:
        """The profile's chosen language, if any."""
        try:
            return self.profile.config().language
        except ClientError:
            return None

    def chrome(self) -> dict[str, Any]:
        """What the base layout shows: state, navigation by role, alerts."""
        view = self.agent.view()  # one moment: an idle lock cannot fall between two reads
        me = view.me
        nav = [s for s in self.sections if not s.needs_unlock or (
            view.unlocked and me is not None and (not s.roles or me.role in s.roles))]
        return {"unlocked": view.unlocked, "me": me, "nav": nav, "role_names": ROLE_NAMES,
                "alerts": [(ALERTS.get(a.kind, ALERTS["unchecked"]), a.detail)
                           for a in view.alerts],
                "profile_name": self.profile.name,
                "set_up": shell.setup_step(self.profile) is None}


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined,
                             extensions=["jinja2.ext.i18n"])
    env.install_gettext_callables(  # type: ignore[attr-defined]  # added by the i18n extension
        gettext=i18n._, ngettext=i18n.ngettext, newstyle=True)
    env.filters.update(datetime=i18n.format_datetime, day=i18n.format_day,
                       number=i18n.format_number)
    return env


def refusal_page(status: int, title: str, detail: str) -> tuple[bytes, str]:
    """The page of a request the guard refuses (no session, so no layout)."""
    template = _environment().get_template("refusal.html")
    body = template.render(lang=i18n.current_language(), title=_(title), detail=_(detail),
                           status=status)
    return body.encode(), "text/html; charset=utf-8"


async def _locked(request: Request, exc: Exception) -> Response:
    target = request.url.path if request.method == "GET" else "/"
    return redirect(f"/unlock?next={target}")


async def _problem(request: Request, exc: Exception) -> Response:
    if isinstance(exc, ProblemError):
        status, title, detail = (exc.status if exc.status < 500 else 502,
                                 _("The server refused"), exc.detail or exc.title)
    elif isinstance(exc, NetworkError):
        status, title, detail = 502, _("The server could not be reached"), str(exc)
    elif isinstance(exc, UsageError):
        status, title, detail = 400, _("This cannot be done"), str(exc)
    else:
        status, title, detail = 502, _("Something went wrong"), str(exc)
    return render(request, "problem.html", {"title": title, "detail": detail},
                  status=status, section="")


async def _http(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    title = _("Page not found") if status == 404 else _("This cannot be done")
    if "desk_session" not in request.scope.get("state", {}):
        body, kind = refusal_page(status, title, "")
        return Response(body, status_code=status, media_type=kind)
    return render(request, "problem.html", {"title": title, "detail": ""}, status=status,
                  section="")


def routes() -> list[BaseRoute]:
    """The shell's routes, each section under its prefix, and the static files."""
    found: list[BaseRoute] = list(shell.routes)
    found += [Mount(f"/{s.key}", routes=list(s.routes)) for s in SECTIONS]
    found.append(Mount("/static", app=StaticFiles(directory=STATIC), name="static"))
    return found


def create_app(options: DeskOptions) -> tuple[Any, Desk]:
    """The guarded ASGI app for ``options``, and its :class:`Desk`."""
    the_desk = Desk(options)
    app = Starlette(routes=routes(), exception_handlers={
        Locked: _locked, ClientError: _problem, HTTPException: _http})
    app.state.desk = the_desk
    guarded = Guard(app, sessions=the_desk.sessions, port=options.port, refuse=refusal_page,
                    default_language=the_desk.language)
    return guarded, the_desk
