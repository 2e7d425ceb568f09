"""The shell in a real browser: first run, unlock once, lock, language, the guard's refusals.

Every screen is captured (``CADENA_DESK_SCREENSHOTS`` keeps them), checked by
axe-core (no serious or critical violation), and no request may leave the
desk's origin.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, expect

from client.local_server import free_port
from client.profile import Profile
from client.sdk import Client
from client.session import Credentials
from client.transparency import DirectoryAPI, wait_until_proven
from crypto import LiaisonPublicKeys
from tests.desk.harness import PASSPHRASE, Screen, World, open_desk

ScreenFactory = Callable[..., Screen]
TEXT = {
    "en": {"setup": "Choose a passphrase for your keys", "unlock": "Unlock your keys",
           "problem": "There is a problem", "fingerprint": "Read your fingerprint out",
           "quorum0": "Quorum 0: you trust the operator alone", "lock": "Lock",
           "welcome": "Welcome", "cases": "Cases", "court": "Court"},
    "es": {"setup": "Elija una frase de contraseña para sus claves",
           "unlock": "Desbloquee sus claves", "problem": "Hay un problema",
           "fingerprint": "Lea su huella", "quorum0": "Quórum 0: confía solo en el operador",
           "lock": "Bloquear", "welcome": "bienvenida", "cases": "Casos", "court": "Tribunal"},
}


def _submit(page: Page, label: str) -> None:
    page.get_by_role("button", name=label).click()
    page.wait_for_load_state()


@pytest.mark.parametrize("language", ["en", "es"])
def test_first_run_makes_keys_shows_the_fingerprint_and_sets_the_trust_roots(
        world: World, screen: ScreenFactory, tmp_path: Path, language: str) -> None:
    words = TEXT[language]
    profile = Profile(f"new-{language}", world.home)
    with open_desk(profile) as desk:
        s = screen(desk, language)
        page = s.launch()
        expect(page.locator("h1")).to_contain_text(words["setup"])
        s.check("setup-1-keys")
        page.locator("#field-passphrase").fill(PASSPHRASE)
        page.locator("#field-confirm").fill(PASSPHRASE + " typo")
        page.locator("form.form button[type=submit]").click()
        expect(page.locator(".error-summary")).to_contain_text(words["problem"])
        expect(page.locator(".error-summary")).to_be_focused()
        s.check("setup-1-keys-error")
        page.locator("#field-passphrase").fill(PASSPHRASE)
        page.locator("#field-confirm").fill(PASSPHRASE)
        page.locator("form.form button[type=submit]").click()
        expect(page.locator("h1")).to_contain_text(words["fingerprint"])
        public = profile.public_keys()
        expect(page.locator(".fingerprint")).to_have_text(public.fingerprint)
        s.check("setup-2-fingerprint")
        served = page.request.get(desk.url + "/setup/public-keys.json").json()
        assert LiaisonPublicKeys.from_json({"sign": served["signing_public"],
                                            "box": served["encryption_public"]}) == public
        _enrol(world, f"carla-{language}", served)  # what the coordinator does with the file

        page.locator("a.button").click()
        s.check("setup-3-server")
        page.locator("#field-server").fill(world.server.url)
        page.locator("#field-liaison").fill(f"carla-{language}")
        page.locator("form.form button[type=submit]").click()
        s.check("setup-4-trust")
        page.locator("#field-ledger_key").fill(world.ledger_key)
        page.locator("form.form button[type=submit]").click()
        expect(page.locator(".warning")).to_contain_text(words["quorum0"])
        expect(page.locator(".fingerprint-cell").first).to_have_text(
            _fingerprint(world.ledger_key))
        s.check("setup-5-confirm")
        page.locator("form.form button[type=submit]").click()  # not ticked: asked again
        expect(page.locator(".error-summary")).to_be_visible()
        page.locator("#field-confirmed").check()
        page.locator("form.form button[type=submit]").click()
        expect(page.locator("h1")).to_contain_text(words["welcome"])
        expect(page.locator(".alert")).to_have_count(0)  # every key under the name is held
        expect(page.get_by_role("navigation").get_by_role("link", name=words["cases"])
               ).to_be_visible()
        s.check("home")
    config = profile.config()
    assert (config.server, config.liaison, config.ledger_key) == (
        world.server.url, f"carla-{language}", world.ledger_key)
    assert config.language is None  # chosen by the browser, not set by the reader
    assert json.loads((profile.path / "trust.json").read_text())["quorum"] == 0
    assert profile.is_encrypted()


def _fingerprint(key: str) -> str:
    from client.trust import key_fingerprint

    return key_fingerprint(key)


def _enrol(world: World, liaison_id: str, public: dict[str, str],
           name: str = "Carla Gómez") -> None:
    coord = world.liaisons["coord"]
    keys = LiaisonPublicKeys.from_json({"sign": public["signing_public"],
                                        "box": public["encryption_public"]})
    now = datetime.now(UTC)
    with Client(world.server.url, credentials=Credentials("coord", coord.keys)) as client:
        client.liaisons.enrol(liaison_id, "CO", name, "prosecutor", keys=keys)
        client.clearances.grant(liaison_id, "SECRET", now - timedelta(minutes=1),
                                now + timedelta(days=30))
        wait_until_proven(DirectoryAPI(client.session), liaison_id)


@pytest.mark.parametrize("language", ["en", "es"])
def test_unlock_once_then_lock_wipes_and_asks_again(world: World, screen: ScreenFactory,
                                                    language: str) -> None:
    words = TEXT[language]
    with open_desk(world.liaisons["ana"].profile) as desk:
        s = screen(desk, language)
        page = s.launch()
        expect(page.locator("h1")).to_contain_text(words["unlock"])
        s.check("unlock")
        page.locator("#field-passphrase").fill("not my passphrase")
        page.locator("form.form button[type=submit]").click()
        expect(page.locator(".error-summary")).to_be_visible()
        expect(page.locator("#field-passphrase")).to_have_attribute("aria-invalid", "true")
        s.check("unlock-error")
        assert not desk.desk.agent.unlocked
        page.locator("#field-passphrase").fill(PASSPHRASE)
        page.locator("form.form button[type=submit]").click()
        expect(page.locator("h1")).to_contain_text("Ana Restrepo")
        assert desk.desk.agent.unlocked
        nav = page.get_by_role("navigation", name=None).first
        expect(nav).to_contain_text(words["court"])
        page.goto(desk.url + "/prosecutor/")  # the passphrase is not asked again
        expect(page.locator("h1")).not_to_contain_text(words["unlock"])
        page.get_by_role("button", name=words["lock"]).click()
        expect(page.locator("h1")).to_contain_text(words["unlock"])
        assert not desk.desk.agent.unlocked
        page.goto(desk.url + "/prosecutor/")
        expect(page.locator("h1")).to_contain_text(words["unlock"])
        assert page.url.endswith("/unlock?next=/prosecutor/")


def test_the_language_is_chosen_by_the_reader_and_kept(world: World, screen: ScreenFactory
                                                       ) -> None:
    with open_desk(Profile("lang", world.home)) as desk:
        s = screen(desk, "en")
        page = s.launch()
        page.goto(desk.url + "/court/")
        expect(page.locator("html")).to_have_attribute("lang", "en")
        for code, heading in [("fr", "Vérifier un certificat de garde"),
                              ("pt", "Verificar um certificado de custódia"),
                              ("es", "Comprobar un certificado de custodia")]:
            page.locator("#language-select").select_option(code)
            page.locator("form.language button").click()
            expect(page.locator("html")).to_have_attribute("lang", code)
            expect(page.locator("h1")).to_have_text(heading)
            assert page.url == desk.url + "/court/"
        page.reload()
        expect(page.locator("h1")).to_have_text("Comprobar un certificado de custodia")
    assert Profile("lang", world.home).config().language == "es"


@contextmanager
def _attacker(desk_url: str, port: int) -> Iterator[str]:
    """A page of another origin (same machine, another port) that posts to the desk."""
    page = (f'<!doctype html><html lang="en"><title>x</title><body>'
            f'<form id="f" method="post" action="{desk_url}/lock">'
            f'<input name="csrf_token" value="guess"></form>'
            f'<script>document.getElementById("f").submit()</script></body></html>').encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_page_of_another_origin_cannot_make_the_browser_act_on_the_desk(
        world: World, screen: ScreenFactory) -> None:
    with open_desk(world.liaisons["bruno"].profile) as desk:
        s = screen(desk, "en")
        page = s.launch()
        page.locator("#field-passphrase").fill(PASSPHRASE)
        page.locator("form.form button[type=submit]").click()
        expect(page.locator("h1")).to_contain_text("Bruno")
        with _attacker(desk.url, free_port()) as evil:
            s.also.add(evil)
            with page.expect_response(desk.url + "/lock") as answer:
                page.goto(evil + "/")
            assert answer.value.status == 403
        assert desk.desk.agent.unlocked  # the forged "lock" changed nothing


def test_the_browser_enforces_the_csp_no_inline_script_runs(world: World,
                                                            screen: ScreenFactory) -> None:
    with open_desk(Profile("csp", world.home)) as desk:
        s = screen(desk, "en")
        page = s.launch()
        page.goto(desk.url + "/court/")
        with pytest.raises(PlaywrightError):
            page.add_script_tag(content="window.injected = true;")
        assert page.evaluate("window.injected === undefined")
        assert any("Content Security Policy" in e for e in s.console_errors)  # Screen.check sees it
        assert page.evaluate("typeof htmx") == "object"  # the desk's own scripts do run


def _rogue_key_row(world: World, liaison_id: str) -> str:
    """What a dishonest operator does: a key row under the name, with no ledger entry."""
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from app.models.identity import LiaisonKey
    from crypto import LiaisonKeys

    rogue = LiaisonKeys.generate().public
    engine = create_engine(f"sqlite:///{world.server.data_dir / 'cadena.db'}")
    try:
        with Session(engine) as session, session.begin():
            session.add(LiaisonKey(key_id=rogue.key_id, liaison_id=liaison_id,
                                   signing_public=rogue.signing,
                                   encryption_public=rogue.encryption,
                                   created_at=datetime.now(UTC)))
    finally:
        engine.dispose()
    return rogue.key_id


@pytest.mark.parametrize("language", ["en", "es"])
def test_a_key_not_held_under_ones_name_is_shown_on_every_page(
        world: World, screen: ScreenFactory, tmp_path: Path, language: str) -> None:
    from nacl import pwhash

    from client.profile import ProfileConfig
    from client.trust import TrustRoots, save_trust
    from crypto import LiaisonKeys, save_keys

    liaison_id = f"diego-{language}"
    keys = LiaisonKeys.generate()
    public = keys.public.to_json()
    _enrol(world, liaison_id, {"signing_public": public["sign"],
                               "encryption_public": public["box"]}, name="Diego Pérez")
    profile = Profile(liaison_id, world.home)
    profile.save_key_file(save_keys(keys, PASSPHRASE, opslimit=pwhash.argon2id.OPSLIMIT_MIN,
                                    memlimit=pwhash.argon2id.MEMLIMIT_MIN))
    profile.save_config(ProfileConfig(world.server.url, liaison_id, world.ledger_key))
    save_trust(profile, TrustRoots.parse(world.ledger_key, [], 0))
    rogue = _rogue_key_row(world, liaison_id)
    heading = {"en": "A key you do not hold appeared under your name",
               "es": "Apareció a su nombre una clave que usted no tiene"}[language]
    with open_desk(profile) as desk:
        s = screen(desk, language)
        page = s.launch()
        page.locator("#field-passphrase").fill(PASSPHRASE)
        page.locator("form.form button[type=submit]").click()
        alert = page.get_by_role("alert")
        expect(alert.locator("h2")).to_have_text(heading)
        expect(alert).to_contain_text(rogue)
        s.check("rogue-key")
        for path in ["/prosecutor/", "/court/", "/"]:
            page.goto(desk.url + path)
            expect(page.get_by_role("alert").locator("h2")).to_have_text(heading)


def _tab_to(page: Page, selector: str, limit: int = 30) -> None:
    """Press Tab until ``selector`` has the focus (a keyboard user's way there)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("(s) => document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"{selector} cannot be reached with the Tab key")


def test_the_keyboard_alone_unlocks_moves_and_locks(world: World, screen: ScreenFactory) -> None:
    with open_desk(world.liaisons["ana"].profile) as desk:
        s = screen(desk, "en")
        page = s.launch()
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.className") == "skip-link"
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.id") == "main"
        _tab_to(page, "#field-passphrase")
        page.keyboard.type(PASSPHRASE)
        page.keyboard.press("Enter")
        expect(page.locator("h1")).to_contain_text("Ana Restrepo")
        _tab_to(page, "a.card[href='/court/']")
        page.keyboard.press("Enter")
        expect(page.locator("h1")).to_have_text("Check a custody certificate")
        _tab_to(page, "#language-select")
        page.keyboard.press("ArrowUp")  # the language above English in the list
        _tab_to(page, "form.language button")
        page.keyboard.press("Enter")
        expect(page.locator("html")).to_have_attribute("lang", "fr")
        _tab_to(page, "form.lock button")
        page.keyboard.press("Enter")
        expect(page.locator("#field-passphrase")).to_be_visible()
        assert not desk.desk.agent.unlocked
    profile = world.liaisons["ana"].profile
    config = profile.config()
    config.language = None  # as the other tests expect Ana's profile
    profile.save_config(config)


def test_the_problem_and_refusal_pages_are_accessible(
        world: World, screen: ScreenFactory) -> None:
    with open_desk(world.liaisons["bruno"].profile) as desk:
        stranger = screen(desk, "es")
        stranger.page.goto(desk.url + "/court/")  # no launch link: refused
        expect(stranger.page.locator("h1")).to_have_text("Abra el escritorio desde su enlace")
        stranger.check("refused")
        s = screen(desk, "en")
        page = s.launch()
        page.locator("#field-passphrase").fill(PASSPHRASE)
        page.locator("form.form button[type=submit]").click()
        expect(page.locator("h1")).to_contain_text("Bruno")
        answer = page.goto(desk.url + "/no-such-page")
        assert answer is not None
        assert answer.status == 404
        expect(page.locator("h1")).to_have_text("Page not found")
        s.check("not-found")
