"""The printable certificate: it renders, carries the bundle, and the bundle verifies."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from client.certificate.pdf import PdfError, extract_bundle, latin1, render_pdf
from client.certificate.refresh import disclose_statement
from client.certificate.verify import Trust, verify_certificate
from ledger.certificate import parse_bundle
from tests.app.conftest import World
from tests.certificates.helpers import EVIDENCE, history, sha256


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
    assert "ALL CHECKS HOLD" in text
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
