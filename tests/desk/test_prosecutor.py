"""The prosecutor's pages in a real browser, end to end against a real server.

Ana (CO) composes a packet with a 20 MB attachment for Bruno (MX) on a
channel the coordinator made through the SDK; Bruno sees it arrive without
reloading, opens it (verified, the message shown as text), saves it into the
folder he chose (the file is byte for byte Ana's), and Ana sees his receipt
and asks for a custody certificate for a named court. In English and in
Spanish; every screen captured, checked by axe-core, and no request leaves
the desk. Then the guard's refusals on these pages' state-changing routes.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import re
import threading
from collections.abc import AsyncGenerator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import httpx
import pytest
from playwright.sync_api import Page, expect
from starlette.requests import Request
from starlette.responses import StreamingResponse

from client.desk.sections.prosecutor import Certificate, _packet_context, _state, events
from client.desk.server import RunningDesk
from client.sdk import Client
from client.session import Credentials
from client.transfer import Outgoing, send_packet
from crypto import Classification, HandlingCode, PacketMeta
from tests.desk.harness import PASSPHRASE, Screen, World, hidden_fields, open_desk

ScreenFactory = Callable[..., Screen]
CHANNEL = "co-mx-desk"
ATTACHMENT_SIZE = 20 * 1000 * 1000
MESSAGE = "Please preserve the records of account 4711.\n<b>This is text, not HTML</b> & more."
TEXT = {
    "en": {"continue": "Continue", "send": "Sign, encrypt and send", "save": "Save the packet",
           "saved": "Every file verified", "certificate": "Ask for a certificate",
           "unlock": "Unlock"},
    "es": {"continue": "Continuar", "send": "Firmar, cifrar y enviar",
           "save": "Guardar el paquete", "saved": "Todos los archivos se verificaron",
           "certificate": "Solicitar un certificado", "unlock": "Desbloquear"},
}


@pytest.fixture(scope="module")
def channel(world: World) -> str:
    """A bilateral channel of Ana and Bruno, made by the coordinator (SDK)."""
    return world.channel(CHANNEL, "Colombia - México")


def _unlock(s: Screen, words: dict[str, str]) -> Page:
    page = s.launch()
    page.goto(s.desk.url + "/unlock?next=/prosecutor/")
    page.locator("#field-passphrase").fill(PASSPHRASE)
    page.get_by_role("button", name=words["unlock"], exact=True).click()
    page.wait_for_url(re.compile(r".*/prosecutor/$"))
    return page


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@pytest.fixture
def evidence(tmp_path: Path) -> Path:
    """A 20 MB file of random bytes."""
    path = tmp_path / "extracto-cuenta.bin"
    with path.open("wb") as out:
        for _ in range(ATTACHMENT_SIZE // (1 << 20)):
            out.write(os.urandom(1 << 20))
        out.write(os.urandom(ATTACHMENT_SIZE % (1 << 20)))
    return path


@pytest.mark.parametrize("language", ["en", "es"])
def test_a_packet_with_a_20_mb_attachment_goes_from_ana_to_bruno_and_back_as_a_receipt(
        world: World, channel: str, screen: ScreenFactory, evidence: Path, tmp_path: Path,
        language: str) -> None:
    words = TEXT[language]
    case = f"CASE-{language.upper()}-{datetime.now(UTC):%H%M%S%f}"
    with open_desk(world.liaisons["ana"].profile) as ana_desk, \
            open_desk(world.liaisons["bruno"].profile) as bruno_desk:
        ana, bruno = screen(ana_desk, language), screen(bruno_desk, language)
        inbox = _unlock(bruno, words)
        bruno.check("prosecutor-inbox")

        page = _unlock(ana, words)
        page.goto(ana_desk.url + "/prosecutor/compose")
        ana.check("prosecutor-compose-channel")
        page.locator("#field-channel").select_option(channel)
        page.get_by_role("button", name=words["continue"]).click()
        expect(page.locator("#recipient-bruno")).to_be_visible()
        assert page.locator("#recipient-ana").count() == 0  # never oneself; only members
        page.locator("#recipient-bruno").check()
        page.locator("#field-classification").select_option("CONFIDENTIAL")
        page.locator("#handling-H2").check()
        page.locator("#evaluation-B2").check()
        page.locator("#field-case_reference").fill(case)
        page.locator("#field-legal_basis").fill("Convención de Palermo, art. 18")
        page.locator("#field-urgency").select_option("urgent")
        due = (datetime.now(UTC) + timedelta(days=2)).date().isoformat()
        assert page.locator("#field-due").get_attribute("min") == datetime.now(UTC).date(
            ).isoformat()
        page.locator("#field-due").fill(due)
        page.locator("#field-message").fill(MESSAGE)
        page.locator("#attachment-picker").set_input_files(str(evidence))
        expect(page.locator("#uploads li.upload-done")).to_have_count(1, timeout=120_000)
        ana.check("prosecutor-compose")
        spool = world.liaisons["ana"].profile.path / "desk-outgoing"
        spooled = [p for p in spool.iterdir() if p.suffix == ".ct"]
        assert len(spooled) == 1
        assert spooled[0].stat().st_mode & 0o777 == 0o600
        head = evidence.read_bytes()[:4096]
        assert head not in spooled[0].read_bytes()  # encrypted as it arrived: no plaintext
        page.get_by_role("button", name=words["send"]).click()
        expect(page.locator("h1")).to_have_text(case, timeout=120_000)
        ana.check("prosecutor-packet-sent")
        assert not [p for p in spool.iterdir() if p.suffix == ".ct"]  # deleted once sent

        # Bruno's inbox was open all along: the packet arrives without a reload.
        row = inbox.locator("#packet-rows tr.fresh", has_text=case)
        expect(row).to_have_count(1, timeout=30_000)
        bruno.check("prosecutor-inbox-arrival")
        row.get_by_role("link").click()
        expect(inbox.locator("pre.message")).to_have_text(MESSAGE)
        assert inbox.locator("pre.message b").count() == 0  # text, never HTML
        expect(inbox.locator(".verified .badge-ok")).to_have_count(4)
        bruno.check("prosecutor-packet")
        packet_path = inbox.url.removeprefix(bruno_desk.url)
        inbox.goto(f"{bruno_desk.url}/prosecutor/folder?next={packet_path}")
        folder = tmp_path / f"saved-{language}"
        bruno.check("prosecutor-folder")
        inbox.locator("#field-folder").fill(str(folder))
        inbox.locator("form.form button[type=submit]").click()
        expect(inbox.locator("code.folder-path")).to_have_text(str(folder))
        inbox.get_by_role("button", name=words["save"]).click()
        expect(inbox.locator(".flash")).to_contain_text(words["saved"], timeout=120_000)
        expect(inbox.locator("p.saved code")).to_contain_text(str(folder))
        assert inbox.get_by_role("button", name=words["save"]).count() == 0
        bruno.check("prosecutor-packet-saved")
        saved = [p for p in folder.rglob(evidence.name)]
        assert len(saved) == 1
        assert _sha256(saved[0]) == _sha256(evidence)
        assert not [p for p in folder.iterdir() if p.name.endswith(".partial")]

        page.reload()
        expect(page.locator("#receipts")).to_contain_text(world.liaisons["bruno"].name)
        page.locator("#field-court").fill("Juzgado Penal del Circuito de Bogotá")
        page.locator("#field-purpose").fill("Juicio oral 2026-118")
        page.get_by_role("button", name=words["certificate"]).click()
        expect(page.locator(".certificate")).to_contain_text("Bogotá", timeout=60_000)
        ana.check("prosecutor-certificate")
        link = page.locator(".certificate a[href$='.json']")
        if link.count():
            answer = page.request.get(ana_desk.url + str(link.get_attribute("href")))
            assert answer.ok
            assert b"Bogot" in answer.body()
        packet_path = page.url.removeprefix(ana_desk.url)
        for name, path in [("prosecutor-sent", "/prosecutor/sent"),
                           ("prosecutor-due", "/prosecutor/due"),
                           ("prosecutor-thread",
                            packet_path.replace("/packets/", "/threads/"))]:
            page.goto(ana_desk.url + path)
            expect(page.locator("main")).to_contain_text(case)
            ana.check(name)


@pytest.fixture(scope="module")
def desk(world: World) -> Iterator[RunningDesk]:
    """Ana's desk, for the guard's refusals (nobody unlocks it)."""
    with open_desk(world.liaisons["ana"].profile) as running:
        yield running


STATE_CHANGING = ["/prosecutor/compose", "/prosecutor/attachments?name=a.txt",
                  "/prosecutor/attachments/x/remove", "/prosecutor/packets/p/save",
                  "/prosecutor/packets/p/withdraw", "/prosecutor/packets/p/share",
                  "/prosecutor/packets/p/shares/r/approve",
                  "/prosecutor/packets/p/certificates", "/prosecutor/certificates/c/collect",
                  "/prosecutor/folder"]


@pytest.mark.parametrize("path", STATE_CHANGING)
def test_the_prosecutors_routes_refuse_no_cookie_a_wrong_host_and_no_csrf_token(
        desk: RunningDesk, path: str) -> None:
    with httpx.Client(base_url=desk.url, follow_redirects=False) as anonymous:
        assert anonymous.post(path, content=b"secret").status_code == 403
    with httpx.Client(base_url=desk.url, follow_redirects=False) as launched:
        assert launched.get(desk.desk.launch_url().removeprefix(desk.url)).status_code == 303
        page = launched.get("/court/")
        token = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
        assert token
        headers = {"X-CSRF-Token": token.group(1)}
        assert launched.post(path, content=b"secret").status_code == 403
        assert launched.post(path, content=b"secret",
                             headers={**headers, "Host": "evil.example"}).status_code == 421
        # with every guard satisfied the route is reached (a locked desk: to the unlock page)
        assert launched.post(path, content=b"", headers=headers).status_code in (303, 400)
    assert not list((desk.desk.profile.path / "desk-outgoing").glob("*.ct"))  # nothing kept


@contextmanager
def _unlocked(desk: RunningDesk) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=desk.url, follow_redirects=False, timeout=60) as http:
        yield _unlock_http(desk, http)


def _unlock_http(desk: RunningDesk, http: httpx.Client) -> httpx.Client:
    assert http.get(desk.desk.launch_url().removeprefix(desk.url)).status_code == 303
    found = re.search(r'name="csrf-token" content="([^"]+)"', http.get("/court/").text)
    assert found
    answer = http.post("/unlock", data={"csrf_token": found.group(1), "passphrase": PASSPHRASE,
                                        "next": "/prosecutor/"})
    assert answer.status_code == 303
    http.headers["X-CSRF-Token"] = found.group(1)
    return http


def _form(http: httpx.Client, page: str, action: str) -> dict[str, str]:
    """The hidden fields (the form's one-time token) of a form as ``page`` renders it."""
    return hidden_fields(http.get(page).text, action)


def _compose(http: httpx.Client, channel: str) -> dict[str, str]:
    return _form(http, f"/prosecutor/compose?channel={channel}", "/prosecutor/compose")


def _sent_count(desk: RunningDesk, http: httpx.Client) -> int:
    return http.get("/prosecutor/sent").text.count('href="/prosecutor/packets/')


def test_a_forged_compose_is_refused_and_sends_nothing(world: World, channel: str) -> None:
    """A page of the desk could be bypassed: the desk checks the form again, as the server does."""
    good = {"channel": channel, "recipients": "bruno", "classification": "RESTRICTED",
            "handling": "H0", "evaluation": "A1", "message": "forged"}
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    forged = [{"recipients": "coord"},               # not a member of the channel
              {"recipients": "ana"},                 # oneself
              {"classification": "TOP-SECRET"}, {"handling": "H9"}, {"evaluation": "D5"},
              {"due": yesterday}, {"due": "tomorrow"}, {"message": "  "},
              {"case_reference": "x" * 300}, {"legal_basis": "line\nbreak"},
              {"attachment": "someone-elses-id"}, {"channel": "no-such-channel"}]
    with open_desk(world.liaisons["ana"].profile) as desk, _unlocked(desk) as http:
        before = _sent_count(desk, http)
        rendered = _compose(http, channel)  # a form with errors is given its token back
        for change in forged:
            answer = http.post("/prosecutor/compose", data={**rendered, **good, **change})
            assert answer.status_code == 400, change
            assert "This form was out of date" not in answer.text
        assert _sent_count(desk, http) == before


@pytest.mark.parametrize("name", ["../escape.txt", "a/b.txt", "..", "", "x" * 300])
def test_an_attachment_name_that_is_a_path_is_refused(world: World, name: str) -> None:
    with open_desk(world.liaisons["ana"].profile) as desk, _unlocked(desk) as http:
        answer = http.post("/prosecutor/attachments", params={"name": name}, content=b"data")
        assert answer.status_code == 400
        spool = desk.desk.profile.path / "desk-outgoing"
        assert not list(spool.glob("*.ct"))


def test_another_desk_session_cannot_send_an_attachment_it_did_not_upload(
        world: World, channel: str) -> None:
    with open_desk(world.liaisons["ana"].profile) as desk, _unlocked(desk) as first, \
            _unlocked(desk) as second:
        uploaded = first.post("/prosecutor/attachments", params={"name": "mine.txt"},
                              content=b"first session's file")
        assert uploaded.status_code == 200
        answer = second.post("/prosecutor/compose", data={
            **_compose(second, channel), "channel": channel, "recipients": "bruno",
            "classification": "RESTRICTED", "handling": "H0", "evaluation": "A1",
            "message": "steal", "attachment": uploaded.json()["id"]})
        assert answer.status_code == 400
        assert "An attachment is no longer here" in answer.text


def test_withdrawal_needs_a_reason_and_is_shown(world: World, channel: str) -> None:
    ana = world.liaisons["ana"]
    with Client(world.server.url, credentials=Credentials("ana", ana.keys)) as client:
        meta = PacketMeta(channel_id=channel, classification=Classification.RESTRICTED,
                          handling=HandlingCode.H0, evaluation="A1",
                          case_reference="TO-WITHDRAW")
        sent = send_packet(client, ana.keys, "ana",
                           Outgoing(["bruno"], meta, io.BytesIO(b"oops"), message_size=4))
    packet_id = sent.created.id
    with open_desk(ana.profile) as desk, _unlocked(desk) as http:
        page_path, action = f"/prosecutor/packets/{packet_id}", \
            f"/prosecutor/packets/{packet_id}/withdraw"
        assert http.post(action, data={**_form(http, page_path, action),
                                       "reason": " "}).status_code == 303
        page = http.get(f"/prosecutor/packets/{packet_id}").text
        assert "Withdraw the packet" in page  # still active: nothing changed
        assert http.post(action, data={**_form(http, page_path, action),
                                       "reason": "sent to the wrong case"}).status_code == 303
        page = http.get(f"/prosecutor/packets/{packet_id}").text
        assert "Withdrawn" in page
        assert "Withdraw the packet" not in page


def _followers() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "desk-events" and t.is_alive()}


def test_an_event_stream_dropped_before_it_began_leaves_no_follower(world: World) -> None:
    """The inbox's event stream follows the server in a thread, stopped when the stream ends.

    The thread was started when the response was made, but only the stream's own ``finally``
    stopped it: a response dropped before its first chunk (the page closed, or reloaded, at
    once) never runs that, and its follower went on reading the server's events for as long
    as the desk ran, one more for each such page.
    """
    with open_desk(world.liaisons["ana"].profile) as desk, _unlocked(desk):
        scope = {"type": "http", "method": "GET", "path": "/prosecutor/events",
                 "query_string": b"after=0", "headers": [],
                 "app": SimpleNamespace(state=SimpleNamespace(desk=desk.desk))}
        before = _followers()

        async def drop_unread() -> None:
            response = await events(Request(scope))
            assert isinstance(response, StreamingResponse)
            await cast(AsyncGenerator[bytes, None], response.body_iterator).aclose()

        with ThreadPoolExecutor(1) as pool:  # a module's browser runs its loop on this thread
            pool.submit(lambda: asyncio.run(drop_unread())).result()
        assert _followers() - before == set()


def test_a_compose_sent_twice_at_once_sends_one_packet(world: World, channel: str) -> None:
    """A double click on Send, or the same form sent from two tabs, while the first is sending.

    Each request checked that the attachments were still spooled, then sent them: the second
    passed that check while the first was still sending, and the packet went twice. The
    spooled file is swapped for a pipe, so the first send waits, reading it, until the second
    request has had its answer; then the pipe gives the file and the file is put back.
    """
    form = {"channel": channel, "recipients": "bruno", "classification": "RESTRICTED",
            "handling": "H0", "evaluation": "A1", "message": "sent once"}
    with open_desk(world.liaisons["ana"].profile) as desk, _unlocked(desk) as http, \
            httpx.Client(base_url=desk.url, cookies=http.cookies, headers=http.headers,
                         follow_redirects=False, timeout=30) as other_tab, \
            ThreadPoolExecutor(1) as pool:
        uploaded = http.post("/prosecutor/attachments", params={"name": "held.txt"},
                             content=b"an attachment sent once")
        assert uploaded.status_code == 200
        spooled = desk.desk.profile.path / "desk-outgoing" / f"{uploaded.json()['id']}.ct"
        ciphertext = spooled.read_bytes()
        spooled.unlink()
        os.mkfifo(spooled, 0o600)
        before = _sent_count(desk, http)
        # each tab rendered the form: two forms, two tokens, one attachment for one of them
        rendered, other_rendered = _compose(http, channel), _compose(other_tab, channel)
        first = pool.submit(http.post, "/prosecutor/compose",
                            data={**rendered, **form, "attachment": uploaded.json()["id"]})
        with spooled.open("wb") as pipe:  # opens once the first send reads the attachment
            second = other_tab.post("/prosecutor/compose", data={
                **other_rendered, **form, "attachment": uploaded.json()["id"]})
            assert second.status_code == 400
            assert "An attachment is no longer here" in second.text
            back = spooled.with_suffix(".back")
            back.write_bytes(ciphertext)
            back.replace(spooled)  # for the send's next reads (the upload's replay)
            pipe.write(ciphertext)
        assert first.result().status_code == 303
        assert _sent_count(desk, http) == before + 1
        assert not list(spooled.parent.glob("*.ct"))


class _Meanwhile(str):
    """A packet id whose comparison runs ``then`` once: another thread's step, at that moment."""

    then: Callable[[], None] | None = None

    def __eq__(self, other: object) -> bool:
        if self.then is not None:
            then, self.then = self.then, None
            then()
        return str.__eq__(self, other)

    __hash__ = str.__hash__


def test_a_certificate_asked_for_while_the_packet_page_lists_them_breaks_nothing(
        world: World, channel: str) -> None:
    """The packet page lists the desk's certificates in a worker thread; the certificate form
    (another tab) adds one on the event loop's thread when the server answers.

    The page iterated the desk's own dictionary: one added meanwhile made it fail ("dictionary
    changed size during iteration"). The comparison of a listed certificate's packet id stands
    in for the moment the other thread runs.
    """
    ana = world.liaisons["ana"]
    with Client(world.server.url, credentials=Credentials("ana", ana.keys)) as client:
        meta = PacketMeta(channel_id=channel, classification=Classification.RESTRICTED,
                          handling=HandlingCode.H0, evaluation="A1")
        packet_id = send_packet(client, ana.keys, "ana", Outgoing(
            ["bruno"], meta, io.BytesIO(b"certified"), message_size=9)).created.id
    with open_desk(ana.profile) as desk, _unlocked(desk):
        request = Request({"type": "http", "method": "GET", "query_string": b"", "headers": [],
                           "path": f"/prosecutor/packets/{packet_id}",
                           "app": SimpleNamespace(state=SimpleNamespace(desk=desk.desk))})
        certificates = _state(request).certificates
        listed = _Meanwhile(packet_id)
        listed.then = lambda: certificates.update(
            later=Certificate("later", packet_id, "Tribunal de Bogotá"))
        certificates["first"] = Certificate("first", listed, "Juzgado 4")
        context = _packet_context(request, packet_id)
        assert [c.id for c in context["certificates"]] == ["first"]
        assert list(certificates) == ["first", "later"]


def test_a_packet_without_attachments_is_sent_from_a_desk_just_started(
        world: World, channel: str) -> None:
    """The spool's folder is removed when a desk first uses it and at every lock, and was
    made only by an upload.

    A send seals its packet in that folder: with no attachment added since the desk
    started (or was locked), the folder was missing and the send failed (502).
    """
    case = f"NO-ATTACHMENT-{datetime.now(UTC):%H%M%S%f}"
    with open_desk(world.liaisons["ana"].profile) as desk, _unlocked(desk) as http:
        answer = http.post("/prosecutor/compose", data={
            **_compose(http, channel), "recipients": "bruno", "classification": "RESTRICTED",
            "handling": "H0", "evaluation": "A1", "case_reference": case,
            "message": "no attachment"})
        assert answer.status_code == 303, answer.text[:2000]
        assert case in http.get(answer.headers["location"]).text
