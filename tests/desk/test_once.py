"""A state-changing form of the desk acts once, however often it is sent.

A double click on Send, the same form sent from two tabs, or the browser's
"resend the form?" prompt after a refresh all post the same rendered form
again. The desk's CSRF token passes each time (it is one per session); the
form's one-time token (client/desk/once.py, ADR 0036) is spent by the first
POST, and the others answer that it was sent already, with a link to what it
led to. Counted on the server: the packets Ana sent under a case reference
used once, and the certificates the desk asked the server for.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from playwright.sync_api import APIResponse, Route, expect
from starlette.requests import Request

from client.desk.sections.prosecutor import _state
from client.desk.server import RunningDesk
from client.profile import Profile
from client.sdk import Client
from client.session import Credentials
from client.transfer import Outgoing, send_packet
from crypto import Classification, HandlingCode, PacketMeta
from tests.desk.harness import PASSPHRASE, Screen, World, hidden_fields, open_desk

ScreenFactory = Callable[..., Screen]
CHANNEL = "co-mx-once"
SENT_ALREADY = {"en": "This form was sent already", "es": "Este formulario ya se envió"}


@pytest.fixture(scope="module")
def channel(world: World) -> str:
    """A bilateral channel of Ana and Bruno, made by the coordinator (SDK)."""
    return world.channel(CHANNEL, "Colombia - México (once)")


@contextmanager
def _unlocked(desk: RunningDesk) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=desk.url, follow_redirects=False, timeout=60) as http:
        assert http.get(desk.desk.launch_url().removeprefix(desk.url)).status_code == 303
        unlock = hidden_fields(http.get("/unlock").text, "/unlock")
        answer = http.post("/unlock", data={**unlock, "passphrase": PASSPHRASE,
                                            "next": "/prosecutor/"})
        assert answer.status_code == 303
        yield http


def _case() -> str:
    return f"ONCE-{datetime.now(UTC):%H%M%S%f}"


def _sent_under(world: World, case: str) -> list[str]:
    """The ids of the packets Ana sent under ``case``, as the server lists them."""
    ana = world.liaisons["ana"]
    with Client(world.server.url, credentials=Credentials("ana", ana.keys)) as client:
        return [p.id for p in client.packets.list("sent", limit=200).packets
                if p.case_reference == case]


def _compose_form(http: httpx.Client, channel: str, case: str) -> dict[str, str]:
    """One rendered compose form, filled in (no attachment)."""
    page = http.get("/prosecutor/compose", params={"channel": channel})
    assert page.status_code == 200
    return {**hidden_fields(page.text, "/prosecutor/compose"), "recipients": "bruno",
            "classification": "RESTRICTED", "handling": "H0", "evaluation": "A1",
            "case_reference": case, "message": "sent once"}


def _at_once(*posts: Callable[[], httpx.Response]) -> list[httpx.Response]:
    """Run each post on its own thread, released together."""
    start = threading.Barrier(len(posts))

    def run(post: Callable[[], httpx.Response]) -> httpx.Response:
        start.wait()
        return post()
    with ThreadPoolExecutor(len(posts)) as pool:
        return list(pool.map(run, posts))


def test_a_compose_without_attachments_sent_twice_at_once_sends_one_packet(
        world: World, channel: str) -> None:
    """A double click, or two tabs, with the same rendered form: one packet, one answer each."""
    case = _case()
    with open_desk(world.liaisons["ana"].profile) as desk, _unlocked(desk) as http:
        form = _compose_form(http, channel, case)
        answers = _at_once(lambda: http.post("/prosecutor/compose", data=form),
                           lambda: http.post("/prosecutor/compose", data=form))
        sent = _sent_under(world, case)
        assert len(sent) == 1, sent
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [303, 409], statuses
        again = next(a for a in answers if a.status_code == 409)
        assert SENT_ALREADY["en"] in again.text
        assert f'href="/prosecutor/packets/{sent[0]}"' in again.text


def test_a_compose_replayed_after_it_was_sent_acts_not_again_and_says_so(
        world: World, channel: str) -> None:
    """The browser's back and "resend the form?": the same form, after the first finished."""
    case = _case()
    with open_desk(world.liaisons["ana"].profile) as desk, _unlocked(desk) as http:
        form = _compose_form(http, channel, case)
        first = http.post("/prosecutor/compose", data=form)
        assert first.status_code == 303
        replayed = http.post("/prosecutor/compose", data=form)
        assert replayed.status_code == 409
        assert SENT_ALREADY["en"] in replayed.text
        assert f'href="{first.headers["location"]}"' in replayed.text
        assert len(_sent_under(world, case)) == 1
        http.cookies.set("cadena_lang", "es")
        in_spanish = http.post("/prosecutor/compose", data=form)
        assert in_spanish.status_code == 409
        assert SENT_ALREADY["es"] in in_spanish.text
        assert len(_sent_under(world, case)) == 1


def test_a_compose_with_an_unknown_token_is_shown_again_with_a_fresh_one(
        world: World, channel: str) -> None:
    case = _case()
    with open_desk(world.liaisons["ana"].profile) as desk, _unlocked(desk) as http:
        form = _compose_form(http, channel, case)
        for token in ("", "not-a-token-of-this-desk"):
            shown = http.post("/prosecutor/compose", data={**form, "form_token": token})
            assert shown.status_code == 400
            assert "This form was out of date" in shown.text
            again = hidden_fields(shown.text, "/prosecutor/compose")
            assert again["form_token"] not in ("", form["form_token"])
            assert f'value="{case}"' in shown.text  # what was typed is kept
        assert _sent_under(world, case) == []
        with httpx.Client(base_url=desk.url, follow_redirects=False, timeout=60) as other:
            # another browser session of the same desk cannot spend this session's token
            assert other.get(desk.desk.launch_url().removeprefix(desk.url)).status_code == 303
            mine = re.search(r'name="csrf-token" content="([^"]+)"', other.get("/court/").text)
            assert mine
            stolen = other.post("/prosecutor/compose",
                                data={**form, "csrf_token": mine.group(1)})
            assert stolen.status_code == 400
        assert _sent_under(world, case) == []
        assert http.post("/prosecutor/compose", data=form).status_code == 303
        assert len(_sent_under(world, case)) == 1


def test_a_form_with_errors_sent_twice_shows_its_errors_twice(
        world: World, channel: str) -> None:
    """Nothing was sent the first time: the same form may be sent again, and is checked again."""
    case = _case()
    with open_desk(world.liaisons["ana"].profile) as desk, _unlocked(desk) as http:
        form = {**_compose_form(http, channel, case), "message": " "}
        for answer in _at_once(lambda: http.post("/prosecutor/compose", data=form),
                               lambda: http.post("/prosecutor/compose", data=form)):
            assert answer.status_code == 400
            assert "Write the message." in answer.text
        assert http.post("/prosecutor/compose",
                         data={**form, "message": "now"}).status_code == 303
        assert len(_sent_under(world, case)) == 1


def _packet(world: World, channel: str) -> str:
    ana = world.liaisons["ana"]
    with Client(world.server.url, credentials=Credentials("ana", ana.keys)) as client:
        meta = PacketMeta(channel_id=channel, classification=Classification.RESTRICTED,
                          handling=HandlingCode.H0, evaluation="A1")
        return send_packet(client, ana.keys, "ana", Outgoing(
            ["bruno"], meta, io.BytesIO(b"to certify"), message_size=10)).created.id


def test_a_certificate_asked_for_twice_at_once_is_asked_for_once(
        world: World, channel: str) -> None:
    packet_id = _packet(world, channel)
    action = f"/prosecutor/packets/{packet_id}/certificates"
    with open_desk(world.liaisons["ana"].profile) as desk, _unlocked(desk) as http:
        page = http.get(f"/prosecutor/packets/{packet_id}")
        form = {**hidden_fields(page.text, action), "court": "Juzgado 2 de Bogotá",
                "purpose": "Juicio oral"}
        answers = _at_once(lambda: http.post(action, data=form),
                           lambda: http.post(action, data=form))
        assert sorted(a.status_code for a in answers) == [303, 409]
        replayed = http.post(action, data=form)
        assert replayed.status_code == 409
        assert f'href="/prosecutor/packets/{packet_id}"' in replayed.text
        request = Request({"type": "http", "method": "GET", "query_string": b"", "headers": [],
                           "path": "/", "app": SimpleNamespace(
                               state=SimpleNamespace(desk=desk.desk))})
        asked = [c for c in _state(request).certificates.values() if c.packet_id == packet_id]
        assert len(asked) == 1, asked


def test_a_token_is_bound_to_its_form(world: World, channel: str) -> None:
    """The certificate form's token does not send another packet's form, nor the compose."""
    first, second = _packet(world, channel), _packet(world, channel)
    with open_desk(world.liaisons["ana"].profile) as desk, _unlocked(desk) as http:
        page = http.get(f"/prosecutor/packets/{first}")
        form = {**hidden_fields(page.text, f"/prosecutor/packets/{first}/certificates"),
                "court": "Juzgado 3", "purpose": "Juicio"}
        other = http.post(f"/prosecutor/packets/{second}/certificates", data=form)
        assert other.status_code == 303
        assert other.headers["location"] == f"/prosecutor/packets/{second}"
        assert "This form was out of date" in http.get(other.headers["location"]).text
        request = Request({"type": "http", "method": "GET", "query_string": b"", "headers": [],
                           "path": "/", "app": SimpleNamespace(
                               state=SimpleNamespace(desk=desk.desk))})
        assert not _state(request).certificates


@pytest.mark.parametrize("language", ["en", "es"])
def test_send_double_clicked_in_the_browser_sends_one_packet(
        world: World, channel: str, screen: ScreenFactory, language: str) -> None:
    case = _case()
    with open_desk(world.liaisons["ana"].profile) as desk:
        ana = screen(desk, language)
        page = ana.launch()
        page.goto(desk.url + "/unlock?next=/prosecutor/")
        page.locator("#field-passphrase").fill(PASSPHRASE)
        page.locator("form.form button[type=submit]").click()
        page.wait_for_url(re.compile(r".*/prosecutor/$"))
        page.goto(f"{desk.url}/prosecutor/compose?channel={channel}")
        page.locator("#recipient-bruno").check()
        page.locator("#evaluation-A1").check()
        page.locator("#field-case_reference").fill(case)
        page.locator("#field-message").fill("double-clicked")
        # A double click as people make it: the second click lands before the first one's
        # answer reached the browser. The first POST goes to the desk and is answered there;
        # its answer is held back from the page until the second click has been made.
        answered: list[APIResponse] = []
        held: list[Route] = []

        def first_answer_held(route: Route) -> None:
            if route.request.method == "POST" and not held:
                answered.append(route.fetch(max_redirects=0))
                held.append(route)
            else:
                route.continue_()
        page.route("**/prosecutor/compose", first_answer_held)
        page.locator("#send-button").scroll_into_view_if_needed()
        box = page.locator("#send-button").bounding_box()
        assert box is not None
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.click(x, y)
        for _ in range(600):
            if answered:
                break
            page.wait_for_timeout(50)
        assert answered
        assert answered[0].status == 303  # the desk sent it, once
        page.mouse.click(x, y)
        heading = page.locator("h1")
        expect(heading).to_have_text(re.compile(f"^({case}|{SENT_ALREADY[language]})$"),
                                     timeout=60_000)  # the second click's answer is shown
        sent = _sent_under(world, case)
        assert len(sent) == 1, sent
        expect(heading).to_have_text(SENT_ALREADY[language])
        ana.check("once-already-sent")
        page.locator(".already-sent a").click()
        expect(heading).to_have_text(case)
        assert page.url == f"{desk.url}/prosecutor/packets/{sent[0]}"
        assert len(_sent_under(world, case)) == 1


def test_a_clearance_granted_twice_at_once_is_granted_once(world: World) -> None:
    coord = world.liaisons["coord"]

    def granted() -> int:
        with Client(world.server.url, credentials=Credentials("coord", coord.keys)) as sdk:
            return len(sdk.clearances.list("bruno"))
    before = granted()
    with open_desk(coord.profile) as desk, _unlocked(desk) as http:
        page = http.get("/coordinator/clearances")
        form = {**hidden_fields(page.text, "/coordinator/clearances"), "liaison": "bruno",
                "level": "RESTRICTED", "days": "5"}
        answers = _at_once(lambda: http.post("/coordinator/clearances", data=form),
                           lambda: http.post("/coordinator/clearances", data=form))
        assert sorted(a.status_code for a in answers) == [303, 409]
    assert granted() == before + 1


def test_keys_made_twice_at_once_on_first_run_are_made_once(tmp_path: Path) -> None:
    """The second request found the key file the first wrote, and failed (an error page)."""
    profile = Profile("new", tmp_path / "home")
    with open_desk(profile) as desk, \
            httpx.Client(base_url=desk.url, headers={"Accept": "text/html"}) as http:
        assert http.get(desk.desk.launch_url().removeprefix(desk.url)).status_code == 303
        form = {**hidden_fields(http.get("/setup/keys").text, "/setup/keys"),
                "passphrase": "long enough phrase", "confirm": "long enough phrase"}
        answers = _at_once(lambda: http.post("/setup/keys", data=form),
                           lambda: http.post("/setup/keys", data=form))
        assert sorted(a.status_code for a in answers) == [303, 409]
        assert profile.has_keys()
        kept = desk.desk.take_new_keys()
        assert kept is not None
        assert kept.public.to_json() == profile.public_keys().to_json()
