"""The desk's test harness (no tests here): a real server with liaisons, a desk, a browser.

- :func:`enrolled_world`: ``cadena-server serve`` on a free port (client.local_server),
  bootstrapped with a coordinator, who enrols states CO and MX and a
  prosecutor in each (``ana`` of CO, ``bruno`` of MX) with clearances; each
  liaison has a profile in ``home`` (keys under :data:`PASSPHRASE`, the
  server, the trust roots) as the first run would leave it.
- :func:`open_desk`: a desk for a profile, served in a thread on a free port.
- :class:`Screen`: one browser page on a desk, opened through the launch link,
  that records every request (any other origin fails the test at the end),
  saves PNGs (:meth:`Screen.shoot`) and runs axe-core (:meth:`Screen.axe`).

Screenshots go to a temporary folder, or to ``CADENA_DESK_SCREENSHOTS``
when it is set (to look at them, or to refresh docs/desk/).
"""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from nacl import pwhash
from playwright.sync_api import Browser, Page, Route

from client.desk.app import DeskOptions
from client.desk.server import RunningDesk, running_desk
from client.local_server import LocalServer, bootstrap, free_port, local_server
from client.profile import Profile, ProfileConfig
from client.sdk import Client
from client.session import Credentials
from client.transparency import DirectoryAPI, wait_until_proven
from client.trust import TrustRoots, save_trust
from crypto import LiaisonKeys, save_keys

PASSPHRASE = "correct horse battery staple"
AXE = Path(__file__).parent / "vendor" / "axe-4.14.1.min.js"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SERIOUS = {"serious", "critical"}


@dataclass
class Liaison:
    """A liaison enrolled on the test server, with their profile."""

    id: str
    state: str
    name: str
    role: str
    keys: LiaisonKeys
    profile: Profile


@dataclass
class World:
    """The running server, its ledger key, the profiles' home and the liaisons."""

    server: LocalServer
    ledger_key: str
    home: Path
    liaisons: dict[str, Liaison] = field(default_factory=dict)

    def channel(self, channel_id: str, title: str) -> str:
        """A bilateral channel of Ana and Bruno, made by the coordinator (SDK); its id."""
        coord = self.liaisons["coord"]
        with Client(self.server.url, credentials=Credentials("coord", coord.keys)) as client:
            client.channels.create(channel_id, title, "bilateral", "RESTRICTED",
                                   members=["ana", "bruno"])
        return channel_id


def _profile(home: Path, name: str, keys: LiaisonKeys, server: str, ledger_key: str,
             liaison: str) -> Profile:
    profile = Profile(name, home)
    profile.save_key_file(save_keys(keys, PASSPHRASE, opslimit=pwhash.argon2id.OPSLIMIT_MIN,
                                    memlimit=pwhash.argon2id.MEMLIMIT_MIN))
    profile.save_config(ProfileConfig(server, liaison, ledger_key))
    save_trust(profile, TrustRoots.parse(ledger_key, [], 0))  # this server has no witness
    return profile


@contextmanager
def enrolled_world(tmp: Path, database_url: str | None = None,
                   extra: dict[str, str] | None = None) -> Iterator[World]:
    """A server with a coordinator and two prosecutors of different states (see module doc).

    ``extra``: more ``CADENA_*`` settings of the server (bench/desk.py lifts the rate limits).
    """
    coord_keys = LiaisonKeys.generate()
    public = tmp / "coord.json"
    data = coord_keys.public.to_json()
    public.write_text(json.dumps({"signing_public": data["sign"],
                                  "encryption_public": data["box"]}))
    ledger_key = bootstrap(tmp / "server", public, database_url=database_url)
    home = tmp / "home"
    with local_server(tmp / "server", database_url=database_url, extra=extra) as server:
        world = World(server, ledger_key, home)
        coord = _profile(home, "coord", coord_keys, server.url, ledger_key, "coord")
        world.liaisons["coord"] = Liaison("coord", "CO", "Coordinator", "coordinator",
                                          coord_keys, coord)
        now = datetime.now(UTC)
        with Client(server.url, credentials=Credentials("coord", coord_keys)) as client:
            client.states.enrol("MX", "México", "Chapultepec Consensus 2012")
            for liaison_id, state, name in [("ana", "CO", "Ana Restrepo"),
                                            ("bruno", "MX", "Bruno Hernández")]:
                keys = LiaisonKeys.generate()
                client.liaisons.enrol(liaison_id, state, name, "prosecutor", keys=keys.public)
                client.clearances.grant(liaison_id, "SECRET", now - timedelta(minutes=1),
                                        now + timedelta(days=30))
                profile = _profile(home, liaison_id, keys, server.url, ledger_key, liaison_id)
                world.liaisons[liaison_id] = Liaison(liaison_id, state, name, "prosecutor",
                                                     keys, profile)
            for liaison_id in world.liaisons:  # a login's key check needs a signed checkpoint
                wait_until_proven(DirectoryAPI(client.session), liaison_id)
        yield world


@contextmanager
def open_desk(profile: Profile, *, idle: float = 900.0) -> Iterator[RunningDesk]:
    """A desk for ``profile`` on a free port (keys made on first run cost little)."""
    with running_desk(DeskOptions(profile, free_port(), idle=idle, kdf="interactive")) as desk:
        yield desk


def screenshot_dir(default: Path) -> Path:
    """Where screenshots go: ``CADENA_DESK_SCREENSHOTS`` if set, else ``default``."""
    chosen = os.environ.get("CADENA_DESK_SCREENSHOTS")
    path = Path(chosen) if chosen else default
    path.mkdir(parents=True, exist_ok=True)
    return path


class Screen:
    """A browser page on one desk; records requests, takes screenshots, runs axe-core."""

    def __init__(self, browser: Browser, desk: RunningDesk, shots: Path, *,
                 language: str = "en") -> None:
        """A new browser context in ``language`` (its Accept-Language), not yet on the desk."""
        self.desk = desk
        self.language = language
        self.shots = shots
        self.context = browser.new_context(locale=language, viewport={"width": 1280,
                                                                     "height": 900})
        self.requests: list[str] = []
        self.foreign: list[str] = []
        self.also: set[str] = set()
        """Other origins a test serves on purpose (an attacker's page); never the desk's."""
        self.context.route("**/*", self._route)
        self.page: Page = self.context.new_page()
        self.console_errors: list[str] = []
        """Errors the page logged: a CSP violation (an inline style or script) shows here."""
        self.page.on("console", lambda m: self.console_errors.append(m.text)
                     if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.console_errors.append(str(e)))

    def _route(self, route: Route) -> None:
        url = route.request.url
        self.requests.append(url)
        origins = {self.desk.url, *self.also}
        if any(url == o or url.startswith(o + "/") for o in origins):
            route.continue_()
        else:
            self.foreign.append(url)
            route.abort()

    def launch(self) -> Page:
        """Open the desk through a fresh launch link; return the page."""
        self.page.goto(self.desk.desk.launch_url())
        return self.page

    def shoot(self, name: str) -> Path:
        """Save the whole page as ``<name>-<language>.png``."""
        path = self.shots / f"{name}-{self.language}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def axe(self) -> list[dict[str, Any]]:
        """axe-core's serious and critical violations on the page (injected by the test)."""
        self.page.evaluate(AXE.read_text(encoding="utf-8"))
        result: dict[str, Any] = self.page.evaluate(
            "async () => await axe.run(document, {resultTypes: ['violations']})")
        return [{"id": v["id"], "impact": v["impact"], "help": v["help"],
                 "nodes": [n["html"][:200] for n in v["nodes"]]}
                for v in result["violations"] if v["impact"] in SERIOUS]

    def check(self, name: str) -> Path:
        """Screenshot, then assert no serious accessibility violation, no foreign request,
        and no error in the page's console (CSP violations, script errors)."""
        path = self.shoot(name)
        violations = self.axe()
        assert not violations, (name, violations)
        assert not self.foreign, self.foreign
        errors = [e for e in self.console_errors  # an answer's 4xx is the page's to show
                  if not e.startswith("Failed to load resource: the server responded")]
        assert not errors, (name, errors)
        return path

    def close(self) -> None:
        """Close the browser context; no request may have left for another origin."""
        self.context.close()
        assert not self.foreign, self.foreign


_FORM = re.compile(r'<form method="post" action="(?P<action>[^"]+)"[^>]*>(?P<body>.*?)</form>',
                   re.DOTALL)
_HIDDEN = re.compile(r'<input type="hidden" name="(?P<name>[^"]+)" value="(?P<value>[^"]*)">')


def hidden_fields(page: str, action: str) -> dict[str, str]:
    """The hidden fields of the form of ``page`` posted to ``action`` (its tokens, its ids)."""
    for form in _FORM.finditer(page):
        if html.unescape(form.group("action")) == action:
            return {html.unescape(m.group("name")): html.unescape(m.group("value"))
                    for m in _HIDDEN.finditer(form.group("body"))}
    raise AssertionError(f"no form posted to {action} in the page")
