"""The court page with a real certificate from a real server, its evidence, and one byte changed.

Ana (CO) sends Bruno (MX) a packet with an attachment through the real CLI;
Bruno fetches it (a signed receipt) and asks the centre for a custody
certificate for a court, disclosing the plaintext digests; then a court
clerk, with no profile and no unlock, opens it on the desk's court page.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect
from typer.testing import CliRunner

from client.cli import app as cli_app
from client.cli.common import CliDeps
from client.profile import Profile
from tests.conftest import fresh_database_url
from tests.desk.harness import PASSPHRASE, Screen, World, enrolled_world, open_desk

ScreenFactory = Callable[..., Screen]
EVIDENCE = "ledger-of-payments.csv"
COURT = "Juzgado Tercero Penal de Bogotá"
# The verifier's words as the page shows them (tests/desk/test_court_messages.py checks every
# message id of the verifier against the catalogs; these check that the page uses them).
TAMPERED_DETAIL = {"en": "matches no digest the sender signed",
                   "es": "no coincide con ningún resumen que el remitente firmó"}
MATCHES_ATTACHMENT = {"en": f"matches attachment '{EVIDENCE}'",
                      "es": f"coincide con el adjunto '{EVIDENCE}'"}
UNPINNED_NOTE = {"en": "the seal key was taken from the certificate itself",
                 "es": "la clave del sello se tomó del propio certificado"}


@dataclass(frozen=True)
class Issued:
    """A certificate as the court receives it, the evidence, and the centre's seal key."""

    json: Path
    pdf: Path
    evidence: Path
    tampered: Path
    seal_key: str


def _cadena(world: World, *args: str) -> Any:
    result = CliRunner().invoke(cli_app, [*args], obj=CliDeps(home=world.home),
                                env={"CADENA_HOME": str(world.home), "CADENA_PROFILE": "",
                                     "CADENA_PASSPHRASE": PASSPHRASE})
    assert result.exit_code == 0, (args, result.output, world.server.log()[-2000:])
    return result


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The real server of the harness, on SQLite and on PostgreSQL."""
    database_url = None
    if request.param == "postgresql":
        request.applymarker(pytest.mark.postgres)
        database_url = fresh_database_url("postgresql", request, tmp_path_factory.mktemp("pg"))
    with enrolled_world(tmp_path_factory.mktemp("world"), database_url) as built:
        yield built


@pytest.fixture(scope="module")
def issued(world: World, tmp_path_factory: pytest.TempPathFactory) -> Issued:
    """A certificate for Ana's packet to Bruno, issued by the real server to a court."""
    work = tmp_path_factory.mktemp("court")
    evidence = work / EVIDENCE
    evidence.write_bytes(b"date,amount,account\n2026-03-01,125000,CO-0042\n" * 200)
    _cadena(world, "channels", "create", "desk-court", "--name", "CO-MX bilateral",
            "--kind", "bilateral", "--min-clearance", "RESTRICTED", "--member", "ana",
            "--member", "bruno", "--profile", "coord")
    sent = json.loads(_cadena(
        world, "send", "--profile", "ana", "--channel", "desk-court", "--to", "bruno",
        "--text", "Payments ledger of the case, as seized.", "--attach", str(evidence),
        "--classification", "RESTRICTED", "--handling", "H0", "--evaluation", "B2",
        "--case", "CO-MX-2026-0042", "--legal-basis", "Treaty on MLA, art. 7",
        "--json").stdout)
    got = work / "bruno"
    _cadena(world, "fetch", str(sent["id"]), "--profile", "bruno", "--out", str(got))
    certificate = work / "certificate.json"
    _cadena(world, "certificate", "issue", str(sent["id"]), "--to", COURT, "--purpose",
            "juicio oral, causa 2026-0042", "--out", str(certificate), "--disclose",
            str(got / "packet.json"), "--wait", "60", "--profile", "bruno")
    pdf = work / "certificate.pdf"
    _cadena(world, "certificate", "pdf", str(certificate), "--out", str(pdf))
    tampered = work / "tampered" / EVIDENCE
    tampered.parent.mkdir()
    data = bytearray(evidence.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit of one byte
    tampered.write_bytes(bytes(data))
    with httpx.Client() as http:
        seal = http.get(world.server.url + "/v1/certificates/key").text.strip()
    return Issued(certificate, pdf, evidence, tampered, seal)


@pytest.mark.parametrize("language", ["es", "en"])
def test_a_certificate_with_its_evidence_holds_on_every_check(
        world: World, screen: ScreenFactory, issued: Issued, tmp_path: Path,
        language: str) -> None:
    clerk = Profile("clerk", tmp_path / "nobody")  # no profile, no keys, no server
    with open_desk(clerk) as desk:
        s = screen(desk, language)
        page = s.launch()
        page.goto(desk.url + "/court/")
        s.check("court-form")
        page.locator("#field-certificate").set_input_files(str(issued.json))
        page.locator("#field-evidence").set_input_files(str(issued.evidence))
        page.locator("summary").click()
        page.locator("#field-seal_key").fill(issued.seal_key)
        page.locator("form.form button[type=submit]").click()
        expect(page.locator(".verdict-ok")).to_be_visible()
        expect(page.locator("tr.fails")).to_have_count(0)
        evidence = "Archivo de prueba" if language == "es" else "Evidence file"
        expect(page.locator("tr.holds th", has_text=f"{evidence} {EVIDENCE}")).to_have_count(1)
        expect(page.locator("tr.holds td.detail", has_text=MATCHES_ATTACHMENT[language])
               ).to_have_count(1)
        expect(page.locator(".summary")).to_contain_text(COURT)
        expect(page.locator(".warning")).to_have_count(0)  # the seal key was given
        s.check("court-valid")
    assert not clerk.path.exists()  # nothing was written for the clerk


@pytest.mark.parametrize("language", ["en", "es"])
def test_one_byte_changed_in_the_evidence_is_shown_not_to_hold(
        world: World, screen: ScreenFactory, issued: Issued, tmp_path: Path,
        language: str) -> None:
    with open_desk(Profile("clerk", tmp_path / "nobody")) as desk:
        s = screen(desk, language)
        page = s.launch()
        page.goto(desk.url + "/court/")
        page.locator("#field-certificate").set_input_files(str(issued.pdf))  # the PDF, too
        page.locator("#field-evidence").set_input_files(str(issued.tampered))
        page.locator("form.form button[type=submit]").click()
        expect(page.locator(".verdict-bad")).to_be_visible()
        failing = page.locator("tr.fails")
        expect(failing).to_have_count(1)
        evidence = "Archivo de prueba" if language == "es" else "Evidence file"
        expect(failing.locator("th")).to_have_text(f"{evidence} {EVIDENCE}")
        digest = hashlib.sha256(issued.tampered.read_bytes()).hexdigest()
        expect(failing.locator("td.detail")).to_have_text(
            f"{digest}  {TAMPERED_DETAIL[language]}")  # the digest as it is, the words translated
        expect(failing.locator("td.detail[lang]")).to_have_count(0)  # the page's language holds
        expect(page.locator(".warning")).to_be_visible()  # no seal key given: said so
        expect(page.locator("ul.notes")).to_contain_text(UNPINNED_NOTE[language])
        s.check("court-tampered")


def test_a_damaged_certificate_or_a_pdf_without_one_is_explained(
        world: World, screen: ScreenFactory, issued: Issued, tmp_path: Path) -> None:
    data = bytearray(issued.json.read_bytes())
    marker = data.index(b'"issued_to"')
    data[marker + 20] ^= 0x01
    damaged = tmp_path / "damaged.json"
    damaged.write_bytes(bytes(data))
    not_a_certificate = tmp_path / "letter.pdf"
    not_a_certificate.write_bytes(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n%%EOF\n")
    with open_desk(Profile("clerk", tmp_path / "nobody")) as desk:
        s = screen(desk, "en")
        page = s.launch()
        page.goto(desk.url + "/court/")
        page.locator("#field-certificate").set_input_files(str(damaged))
        page.locator("form.form button[type=submit]").click()
        expect(page.locator(".verdict-bad")).to_be_visible()
        s.check("court-damaged")
        page.goto(desk.url + "/court/")
        page.locator("#field-certificate").set_input_files(str(not_a_certificate))
        page.locator("form.form button[type=submit]").click()
        expect(page.locator(".error-summary")).to_contain_text("This PDF holds no certificate")
        page.locator("form.form button[type=submit]").click()  # no file at all
        expect(page.locator(".error-summary")).to_contain_text("Choose the certificate file")
        s.check("court-error")


def test_the_court_page_writes_nothing_to_disk(world: World, issued: Issued,
                                               tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    spool = tmp_path / "tmp"
    spool.mkdir()
    monkeypatch.setenv("TMPDIR", str(spool))
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    with open_desk(Profile("clerk", tmp_path / "nobody")) as desk, \
            httpx.Client(base_url=desk.url) as http:
        http.get(desk.desk.launch_url().removeprefix(desk.url))
        page = http.get("/court/").text
        token = page.split('name="csrf-token" content="')[1].split('"')[0]
        big = tmp_path / "big.bin"
        big.write_bytes(b"\0" * (3 << 20))  # larger than any in-memory spool threshold
        with issued.json.open("rb") as cert, big.open("rb") as evidence:
            answer = http.post("/court/", data={"csrf_token": token},
                               files={"certificate": ("c.json", cert, "application/json"),
                                      "evidence": ("big.bin", evidence, "application/x")})
        assert answer.status_code == 200
        assert "big.bin" in answer.text
    assert list(spool.iterdir()) == []
    assert not (tmp_path / "nobody").exists()
