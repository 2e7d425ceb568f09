"""The printable certificate: it renders, carries the bundle, and the bundle verifies."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from client.certificate.pdf import (
    CONTINUED,
    PdfError,
    _Document,
    extract_bundle,
    latin1,
    quorum_text,
    render_pdf,
)
from client.certificate.refresh import disclose_statement
from client.certificate.verify import Trust, verify_certificate
from custody import parse_bundle, parse_policy
from ledger import CosignatureSigner, NoteSigner
from tests.app.conftest import World
from tests.certificates.helpers import EVIDENCE, History, history, sha256


@pytest.fixture
def disclosed(world: World) -> tuple[bytes, Trust]:
    """A certificate with bob's disclosed statement, and the trust to verify it."""
    h = history(world)
    statement, signature = h.statement()
    bundle = disclose_statement(parse_bundle(h.certificate()), statement, signature, "bob")
    return bundle.to_bytes(), Trust(seal_key=h.seal_key())


def test_pdf_embeds_the_bundle_byte_for_byte_and_it_verifies(
        disclosed: tuple[bytes, Trust]) -> None:
    data, trust = disclosed
    pdf = render_pdf(data)
    assert pdf.startswith(b"%PDF-")
    assert extract_bundle(pdf) == data
    verify_certificate(extract_bundle(pdf), trust, {"evidence.txt": sha256(EVIDENCE)})


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils not installed")
def test_pdf_text_shows_the_facts_digests_and_how_to_verify(
        disclosed: tuple[bytes, Trust], tmp_path: Path) -> None:
    data, _ = disclosed
    path = tmp_path / "certificate.pdf"
    path.write_bytes(render_pdf(data))
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], check=True,
                          capture_output=True).stdout.decode()
    bundle = parse_bundle(data)
    assert bundle.certificate.id in text
    assert "Juzgado Tercero Penal de Bogot" in text
    assert re.search(sha256(EVIDENCE) + r" +evidence\.txt", text)  # as sha256sum prints it
    assert "cadena certificate verify" in text
    assert bundle.seal.key[:30] in text
    saved = subprocess.run(["pdfdetach", "-list", str(path)], check=True,
                           capture_output=True).stdout.decode()
    assert f"certificate-{bundle.certificate.id}.json" in saved


def test_pdf_of_something_else_is_refused() -> None:
    with pytest.raises(PdfError):
        render_pdf(b"{}")
    with pytest.raises(PdfError, match="0 attached files"):
        extract_bundle(b"%PDF-1.4 no attachment")


def test_text_outside_latin1_is_replaced_for_printing_only() -> None:
    assert latin1("\u2014 Bogotá → Kyiv Київ") == "- Bogotá -> Kyiv ????"


def _text(data: bytes, tmp_path: Path) -> str:
    path = tmp_path / "certificate.pdf"
    path.write_bytes(render_pdf(data))
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], check=True,
                          capture_output=True).stdout.decode()


def _copyable(text: str) -> str:
    """The text with every continuation mark and the line break after it removed."""
    return re.sub(" " + CONTINUED + r"\n *", "", text)


needs_poppler = pytest.mark.skipif(shutil.which("pdftotext") is None,
                                   reason="poppler-utils not installed")


@needs_poppler
def test_pdf_states_the_seal_and_how_to_verify_not_a_verdict(
        disclosed: tuple[bytes, Trust], tmp_path: Path) -> None:
    data, _ = disclosed
    text = _text(data, tmp_path)
    assert "ALL CHECKS HOLD" not in text
    assert "sealed by" in text
    assert "cadena certificate verify" in text
    assert "published key" in text


@needs_poppler
def test_lines_to_copy_are_printed_exactly_in_monospace(
        disclosed: tuple[bytes, Trust], tmp_path: Path) -> None:
    data, _ = disclosed
    text = _copyable(_text(data, tmp_path))
    bundle = parse_bundle(data)
    note = bundle.certificate.events[0].proof.split("\n\n", 1)[1]
    signatures = [line for line in note.split("\n\n")[1].split("\n") if line]
    assert signatures
    assert all(line.startswith("\u2014 ") for line in signatures)
    for line in [bundle.seal.key, *signatures]:
        assert line in text, line
    key_ids = {k for step in bundle.certificate.custody
               for k in re.findall(r"[0-9a-f]{32}", step.event + step.authority)}
    assert key_ids
    for key_id in key_ids:  # never wrapped inside the custody table
        assert key_id in text, key_id


@needs_poppler
def test_refusals_people_and_the_quorum_are_listed(world: World, tmp_path: Path) -> None:
    h = history(world)
    text = _text(h.certificate(), tmp_path)
    assert "Refused attempts" in text
    assert re.search(r"carol +packet\.retrieve +not-a-party", text)
    assert re.search(r"alice +Alice +[A-Z]{2} +prosecutor +states the same", text)
    assert re.search(r"carol +Carol +[A-Z]{2} +prosecutor +not in this certificate", text)
    assert "Witness quorum" in text
    assert "none required (0 of 0 witnesses)" in text


@needs_poppler
def test_a_withdrawn_packet_is_marked_in_the_facts(world: World, tmp_path: Path) -> None:
    h: History = history(world, share=False)
    withdrawn = world.client.post(f"/v1/packets/{h.packet_id}/withdraw",
                                  headers=h.ex.alice.auth, json={"reason": "source burned"})
    assert withdrawn.status_code == 200, withdrawn.text
    text = _text(h.certificate(), tmp_path)
    assert re.search(r"Status +WITHDRAWN by alice at .*source burned", text)


WITNESS_KEYS = [CosignatureSigner(f"w{n}.example/w", SigningKey(bytes([n]) * 32)).verifier_key()
                for n in (1, 2)]
LOG_KEY = NoteSigner("test.cadena/ledger", SigningKey(bytes(32))).verifier_key()


@pytest.mark.parametrize(("quorum", "stated"), [
    ("quorum none", "none required (0 of 2 witnesses)"),
    ("quorum a", "1 of 2 witnesses (a)"),
    ("group g 2 a b\nquorum g", "2 of 2 witnesses (a, b)"),
    ("group g any a b\nquorum g", "1 of 2 witnesses (a, b)"),
])
def test_quorum_is_stated_as_k_of_n_witnesses(quorum: str, stated: str) -> None:
    policy = parse_policy(f"log {LOG_KEY}\nwitness a {WITNESS_KEYS[0]}\n"
                          f"witness b {WITNESS_KEYS[1]}\n{quorum}\n")
    assert quorum_text(policy) == stated


@needs_poppler
def test_a_line_too_long_for_the_page_is_broken_with_a_visible_mark(tmp_path: Path) -> None:
    line = "\u2014 witness.example/w " + "A" * 150 + "B" * 150 + "=="
    document = _Document("t")
    document.add_page()
    document.mono([line], size=6.5)
    path = tmp_path / "long.pdf"
    path.write_bytes(bytes(document.output()))
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], check=True,
                          capture_output=True).stdout.decode()
    assert text.count(CONTINUED) >= 2
    assert line in _copyable(text)
