"""The coordinator's pages in a real browser against a real server, in Spanish and English.

The coordinator enrols a prosecutor from the public-key file the desk's first
run gives (a wrong fingerprint typed is refused and nothing is sent), grants,
renews and revokes a clearance, creates a channel with members, sees a
refusal of the server in their language, and registers and removes a
witness. Every screen is captured, checked by axe-core, and no request may
leave the desk's origin. Then the guard's refusals on every state-changing
route of the section: no cookie, another Host, no CSRF token.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from client.desk.sections.coordinator import (
    DUE_SOON,
    NotAKeyFile,
    clearance_status,
    parse_public_keys,
    same_fingerprint,
)
from client.desk.security import COOKIE
from client.desk.server import RunningDesk
from client.errors import NotFound
from client.models import Clearance
from client.sdk import Client
from client.session import Credentials
from crypto import LiaisonKeys
from ledger import CosignatureSigner
from tests.desk.harness import PASSPHRASE, Screen, World, open_desk

ScreenFactory = Callable[..., Screen]
TEXT = {
    "en": {"enrolled": "was enrolled", "not_fingerprint": "This is not the fingerprint",
           "due_soon": "Due soon", "in_force": "In force", "revoked": "Revoked",
           "granted": "The clearance was granted.", "created": "was created",
           "membership": "Membership not allowed", "registered": "was registered",
           "removed": "was removed", "taken_out": "was taken out of the channel"},
    "es": {"enrolled": "fue dado de alta", "not_fingerprint": "Esta no es la huella",
           "due_soon": "Vence pronto", "in_force": "Vigente", "revoked": "Revocada",
           "granted": "Se concedió la habilitación.", "created": "fue creado",
           "membership": "Pertenencia no permitida", "registered": "fue registrado",
           "removed": "fue retirado", "taken_out": "fue retirado del canal"},
}


def _unlock(s: Screen) -> Page:
    page = s.launch()
    page.locator("#field-passphrase").fill(PASSPHRASE)
    page.locator("form.form button[type=submit]").click()
    expect(page.locator("h1")).not_to_contain_text("nlock")
    return page


def _coord(world: World) -> Client:
    return Client(world.server.url, credentials=Credentials("coord",
                                                            world.liaisons["coord"].keys))


def _key_file(path: Path, keys: LiaisonKeys) -> Path:
    """The file the desk's first run hands the liaison (cadena-public-keys.json)."""
    data = keys.public.to_json()
    path.write_text(json.dumps({"signing_public": data["sign"], "encryption_public": data["box"],
                                "fingerprint": keys.public.fingerprint}))
    return path


@pytest.mark.parametrize("language", ["en", "es"])
def test_the_coordinator_enrols_grants_renews_revokes_and_makes_a_channel(
        world: World, screen: ScreenFactory, tmp_path: Path, language: str) -> None:
    words = TEXT[language]
    newcomer, keys = f"dora-{language}", LiaisonKeys.generate()
    with open_desk(world.liaisons["coord"].profile) as desk:
        s = screen(desk, language)
        page = _unlock(s)
        page.goto(desk.url + "/coordinator/")
        s.check("coordinator-home")

        # Enrolment: the file, then its fingerprint compared with the one read out.
        page.goto(desk.url + "/coordinator/liaisons")
        s.check("coordinator-liaisons")
        page.locator("#field-id").fill(newcomer)
        page.locator("#field-name").fill("Dora Álvarez")
        page.locator("#field-state").select_option("CO")
        page.locator("#field-key_file").set_input_files(
            str(_key_file(tmp_path / "cadena-public-keys.json", keys)))
        page.locator("form[action='/coordinator/liaisons/enrol'] button[type=submit]").click()
        # A careless coordinator could copy a fingerprint shown on the page: the file's is
        # never shown before the one read out matched it.
        expect(page.locator("#field-fingerprint")).to_be_visible()
        expect(page.locator("main")).not_to_contain_text(keys.public.fingerprint)
        s.check("coordinator-enrol-confirm")
        wrong = LiaisonKeys.generate().public.fingerprint
        page.locator("#field-fingerprint").fill(wrong)
        page.locator("form.form button[type=submit]").click()
        expect(page.locator(".error-summary")).to_contain_text(words["not_fingerprint"])
        expect(page.locator("#field-fingerprint")).to_have_attribute("aria-invalid", "true")
        s.check("coordinator-enrol-wrong-fingerprint")
        with _coord(world) as client, pytest.raises(NotFound):
            client.liaisons.get(newcomer)  # nothing was sent
        page.locator("#field-fingerprint").fill(keys.public.fingerprint.replace(" ", "-"))
        page.locator("form.form button[type=submit]").click()
        expect(page.locator(".flash")).to_contain_text(words["enrolled"])
        expect(page.locator("td", has_text=keys.public.fingerprint)).to_be_visible()
        with _coord(world) as client:
            enrolled = client.liaisons.get(newcomer)
        assert enrolled.current_key is not None
        assert enrolled.current_key.fingerprint == keys.public.fingerprint
        assert enrolled.role == "prosecutor"

        # Clearances: granted for ten days (due soon), renewed (in force), revoked.
        page.goto(desk.url + "/coordinator/clearances")
        page.locator("#field-liaison").select_option(newcomer)
        page.locator("#field-level").select_option("CONFIDENTIAL")
        page.locator("#field-days").fill("10")
        page.locator("form[action='/coordinator/clearances'] button[type=submit]").click()
        expect(page.locator(".flash")).to_have_text(words["granted"])
        row = page.locator(f"tr.clearance[data-liaison='{newcomer}']")
        expect(row).to_have_count(1)
        expect(row.locator(".badge")).to_have_text(words["due_soon"])
        expect(page.locator("tr.clearance").first).to_have_attribute("data-liaison", newcomer)
        s.check("coordinator-clearances")
        row.locator("input[name=days]").fill("365")
        row.locator("form.renew button").click()
        expect(row.locator(".badge")).to_have_text(words["in_force"])
        with _coord(world) as client:
            (held,) = client.clearances.list(newcomer)
        assert held.valid_until > datetime.now(UTC) + timedelta(days=360)
        row.locator("input[name=reason]").fill("left the prosecutor's office")
        row.locator("form.revoke button").click()
        expect(row.locator(".badge")).to_have_text(words["revoked"])
        with _coord(world) as client:
            (held,) = client.clearances.list(newcomer)
        assert held.revoked_at is not None
        assert not held.in_force

        # A channel with two prosecutors of different states.
        channel = f"co-mx-{language}"
        page.goto(desk.url + "/coordinator/channels")
        page.locator("#field-id").fill(channel)
        page.locator("#field-name").fill(f"Colombia–México {language}")
        page.locator("#field-kind").select_option("bilateral")
        page.locator("#field-level").select_option("SECRET")
        page.locator("#member-ana").check()
        page.locator("#member-bruno").check()
        page.locator("form[action='/coordinator/channels'] button[type=submit]").click()
        expect(page.locator(".flash")).to_contain_text(words["created"])
        members = page.locator(f"#channel-{channel} .members")
        expect(members).to_contain_text("Ana Restrepo")
        expect(members).to_contain_text("Bruno Hernández")
        s.check("coordinator-channels")
        with _coord(world) as client:
            made = {c.id: c for c in client.channels.list()}[channel]
        assert sorted(made.members) == ["ana", "bruno"]
        # The server refuses a coordinator as a member; the title is in the reader's language.
        page.locator(f"#field-member-{channel}").select_option("coord")
        page.locator(f"#channel-{channel} form.add-member button").click()
        expect(page.locator("h1")).to_have_text(words["membership"])
        expect(page.locator(".problem-detail")).to_contain_text("only prosecutors")
        s.check("coordinator-refused")
        with _coord(world) as client:
            assert "coord" not in {c.id: c for c in client.channels.list()}[channel].members
        # Taking a member out.
        page.goto(desk.url + "/coordinator/channels")
        page.locator(f"form[action='/coordinator/channels/{channel}/members/bruno/remove'] "
                     "button").click()
        expect(page.locator(".flash")).to_contain_text(words["taken_out"])
        expect(page.locator(f"#channel-{channel} .members")).not_to_contain_text("Bruno")
        with _coord(world) as client:
            assert {c.id: c for c in client.channels.list()}[channel].members == ["ana"]

        # States.
        page.goto(desk.url + "/coordinator/states")
        code = {"en": "PE", "es": "EC"}[language]
        page.locator("#field-code").fill(code.lower())
        page.locator("#field-name").fill("Perú" if code == "PE" else "Ecuador")
        page.locator("#field-note").fill("Acta 2026/7")
        page.locator("form[action='/coordinator/states'] button[type=submit]").click()
        expect(page.locator("td strong", has_text=code)).to_be_visible()
        s.check("coordinator-states")
        form = page.locator(f"form[action='/coordinator/states/{code}/status']")
        form.locator("select").select_option("suspended")
        form.locator("input[name=reason]").fill("review of the joining note")
        form.locator("button").click()
        expect(page.locator(".flash")).to_contain_text(code)
        with _coord(world) as client:
            assert {x.code: x.status for x in client.states.list()}[code] == "suspended"


@pytest.mark.parametrize("language", ["en", "es"])
def test_the_coordinator_registers_and_removes_a_witness(
        world: World, screen: ScreenFactory, language: str) -> None:
    words = TEXT[language]
    from nacl.signing import SigningKey

    name = f"witness-{language}"
    signer = CosignatureSigner(name, SigningKey.generate())
    with open_desk(world.liaisons["coord"].profile) as desk:
        s = screen(desk, language)
        page = _unlock(s)
        page.goto(desk.url + "/coordinator/witnesses")
        page.locator("#field-name").fill(name)
        page.locator("#field-url").fill("http://127.0.0.1:9/witness")
        page.locator("#field-key").fill(signer.verifier_key())
        page.locator("form[action='/coordinator/witnesses'] button[type=submit]").click()
        expect(page.locator(".flash")).to_contain_text(words["registered"])
        expect(page.get_by_role("cell", name=name, exact=True)).to_be_visible()
        s.check("coordinator-witnesses")
        with _coord(world) as client:
            assert name in {w.name for w in client.witnesses.list()}
        page.locator(f"form[action='/coordinator/witnesses/{name}/remove'] button").click()
        expect(page.locator(".flash")).to_contain_text(words["removed"])
        with _coord(world) as client:
            assert name not in {w.name for w in client.witnesses.list()}


# -- the section's rules, without a browser ------------------------------------


def test_a_public_key_file_is_read_in_both_forms_and_anything_else_refused() -> None:
    keys = LiaisonKeys.generate().public
    data = keys.to_json()
    desk_form = json.dumps({"signing_public": data["sign"], "encryption_public": data["box"]})
    assert parse_public_keys(desk_form.encode()) == keys
    assert parse_public_keys(json.dumps(data).encode()) == keys
    for bad in [b"", b"\xff", b"[]", b'{"sign": "AAAA", "box": "AAAA"}',
                json.dumps({"signing_public": data["sign"]}).encode(),
                json.dumps({"signing_public": data["sign"], "encryption_public": "!"}).encode()]:
        with pytest.raises(NotAKeyFile):
            parse_public_keys(bad)


def test_only_the_same_thirty_digits_confirm_a_fingerprint() -> None:
    fingerprint = LiaisonKeys.generate().public.fingerprint
    assert same_fingerprint(fingerprint, fingerprint)
    assert same_fingerprint(fingerprint.replace(" ", ""), fingerprint)
    assert same_fingerprint(" " + fingerprint.replace(" ", "-") + " ", fingerprint)
    assert not same_fingerprint("", fingerprint)
    assert not same_fingerprint(fingerprint[:-1], fingerprint)
    last = fingerprint[-1]
    assert not same_fingerprint(fingerprint[:-1] + str((int(last) + 1) % 10), fingerprint)
    assert not same_fingerprint(fingerprint + "0", fingerprint)


def test_a_clearance_is_marked_by_its_expiry() -> None:
    now = datetime(2026, 12, 7, tzinfo=UTC)

    def clearance(start: timedelta, end: timedelta, revoked: bool = False) -> Clearance:
        return Clearance(id="c", liaison_id="ana", level="SECRET", valid_from=now + start,
                         valid_until=now + end, granted_by="coord", granted_at=now,
                         revoked_at=now if revoked else None, in_force=False)

    assert clearance_status(clearance(-timedelta(days=9), -timedelta(seconds=1)), now) == "lapsed"
    assert clearance_status(clearance(-timedelta(days=9), DUE_SOON), now) == "due-soon"
    assert clearance_status(clearance(-timedelta(days=9), DUE_SOON + timedelta(seconds=1)),
                            now) == "in-force"
    assert clearance_status(clearance(timedelta(days=1), timedelta(days=99)), now) == "pending"
    assert clearance_status(clearance(-timedelta(days=9), timedelta(days=99), True),
                            now) == "revoked"


# -- the guard on the section's state-changing routes --------------------------

POSTS = ["/coordinator/states", "/coordinator/states/CO/status", "/coordinator/liaisons/enrol",
         "/coordinator/liaisons/enrol/confirm", "/coordinator/clearances",
         "/coordinator/clearances/x/renew", "/coordinator/clearances/x/revoke",
         "/coordinator/channels", "/coordinator/channels/x/members",
         "/coordinator/channels/guard-ch/members/ana/remove", "/coordinator/witnesses",
         "/coordinator/witnesses/x/remove"]


@pytest.fixture(scope="module")
def coord_desk(world: World) -> Iterator[RunningDesk]:
    """The coordinator's desk, unlocked (a refusal must hold even then), and a channel."""
    with _coord(world) as client:
        client.channels.create("guard-ch", "Guard", "multilateral", "RESTRICTED",
                               members=["ana"])
    with open_desk(world.liaisons["coord"].profile) as desk:
        desk.desk.agent.unlock(PASSPHRASE)
        yield desk


def _launched(desk: RunningDesk) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=desk.url, follow_redirects=False)
    assert client.get(desk.desk.launch_url().removeprefix(desk.url)).status_code == 303
    token = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/court/").text)
    assert token
    return client, token.group(1)


@pytest.mark.parametrize("path", POSTS)
def test_each_change_is_refused_without_cookie_with_another_host_or_without_csrf(
        world: World, coord_desk: RunningDesk, path: str) -> None:
    form = {"code": "ZZ", "name": "Nowhere", "note": "n", "status": "suspended",
            "reason": "r", "liaison": "ana", "level": "SECRET", "days": "5", "id": "zz",
            "kind": "multilateral", "url": "http://127.0.0.1:9/w", "key": "k"}
    client, token = _launched(coord_desk)
    with httpx.Client(base_url=coord_desk.url, cookies={COOKIE: "stolen-guess"}) as stranger:
        assert stranger.post(path, data={**form, "csrf_token": token}).status_code == 403
        wrong_host = client.post(path, data={**form, "csrf_token": token},
                                 headers={"Host": "evil.example"})
        assert wrong_host.status_code == 421
        assert client.post(path, data=form).status_code == 403
        assert client.post(path, data={**form, "csrf_token": "guess"}).status_code == 403
    client.close()
    with _coord(world) as sdk:
        assert "ZZ" not in {s.code for s in sdk.states.list()}
        assert {s.code: s.status for s in sdk.states.list()}["CO"] == "active"
        channels = {c.id: c for c in sdk.channels.list()}
        assert "zz" not in channels
        assert channels["guard-ch"].members == ["ana"]
