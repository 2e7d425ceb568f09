"""The printable custody certificate (fpdf2), with the machine bundle attached.

The PDF is for people: the facts, the result of the checks at printing, the
custody table, digests in hex laid out as ``sha256sum`` prints them, the keys,
and how to verify the certificate independently. It proves nothing by itself:
the proof is the attached bundle (``certificate-<id>.json``, a PDF file
attachment), which :func:`extract_bundle` (or ``pdfdetach``) recovers byte for
byte for ``cadena certificate verify``.

Text uses the PDF core fonts (Helvetica, Courier), so the output does not
depend on fonts installed on the machine; characters outside Latin-1 are
replaced (``—`` by ``-``, others by ``?``) in the printed text only.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Sequence
from datetime import datetime

from fpdf import FPDF
from fpdf.fonts import FontFace

from client.certificate.verify import Report, check_certificate
from crypto.header import PacketHeader
from crypto.statement import Statement
from ledger.certificate import Bundle, parse_policy
from ledger.proof import parse_tlog_proof

_EMBEDDED = re.compile(rb"<<((?:(?!>>\s*stream)[\s\S]){0,2000}?/Type\s*/EmbeddedFile[\s\S]{0,200}?)"
                       rb">>\s*stream\r?\n")
_LENGTH = re.compile(rb"/Length\s+(\d+)")
_REPLACE = str.maketrans({"\u2014": "-", "\u2013": "-", "\u2192": "->", "\u2026": "...",
                          "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})
MONO = "courier"
SANS = "helvetica"


class PdfError(ValueError):
    """The file is not a PDF with one attached certificate bundle."""


def latin1(text: str) -> str:
    """``text`` as the core fonts can print it."""
    return text.translate(_REPLACE).encode("latin-1", "replace").decode("latin-1")


def extract_bundle(pdf: bytes) -> bytes:
    """The bytes of the certificate bundle attached to a certificate PDF."""
    found = list(_EMBEDDED.finditer(pdf))
    if len(found) != 1:
        raise PdfError(f"the PDF holds {len(found)} attached files, not one bundle")
    dictionary, start = found[0].group(1), found[0].end()
    length = _LENGTH.search(dictionary)
    if length is None:
        raise PdfError("the attachment has no direct /Length")
    data = pdf[start:start + int(length.group(1))]
    if b"/FlateDecode" in dictionary:
        try:
            data = zlib.decompress(data)
        except zlib.error as exc:
            raise PdfError(f"the attachment does not decompress: {exc}") from exc
    return data


class _Document(FPDF):
    def __init__(self, title: str) -> None:
        super().__init__(format="A4")
        self.title_text = title
        self.set_auto_page_break(auto=True, margin=15)
        self.set_margins(15, 15, 15)

    def footer(self) -> None:
        """Page numbers (called by fpdf2 on every page)."""
        self.set_y(-12)
        self.set_font(SANS, size=7)
        self.cell(0, 5, latin1(f"{self.title_text} - page {self.page_no()}/{{nb}}"),
                  align="C")

    def heading(self, text: str) -> None:
        """A section title with a rule under it."""
        self.ln(2)
        self.set_font(SANS, "B", 11)
        self.cell(0, 7, latin1(text), new_x="LMARGIN", new_y="NEXT")
        self.set_draw_color(120, 120, 120)
        self.line(self.l_margin, self.get_y(), self.w - self.r_margin, self.get_y())
        self.ln(1.5)

    def facts(self, rows: Sequence[tuple[str, str]]) -> None:
        """Label and value rows."""
        for label, value in rows:
            self.set_font(SANS, "B", 9)
            self.cell(42, 5, latin1(label))
            self.set_font(SANS, size=9)
            self.multi_cell(0, 5, latin1(value), new_x="LMARGIN", new_y="NEXT", align="L")

    def mono(self, lines: Sequence[str], size: float = 7.5) -> None:
        """Lines in a fixed-width font (digests, keys, notes)."""
        self.set_font(MONO, size=size)
        for line in lines:
            self.multi_cell(0, 3.8, latin1(line), new_x="LMARGIN", new_y="NEXT", align="L")
        self.ln(1)

    def para(self, paragraph: str, size: float = 9) -> None:
        """A left-aligned paragraph."""
        self.set_font(SANS, size=size)
        self.multi_cell(0, 4.6, latin1(paragraph), new_x="LMARGIN", new_y="NEXT",
                        align="L")


def _facts(bundle: Bundle, header: PacketHeader) -> list[tuple[str, str]]:
    c, m = bundle.certificate, header.meta
    keys = {k.keys.key_id: k for k in c.keys}
    sender = keys.get(header.sender.key_id)
    return [
        ("Certificate", c.id), ("Issued to", c.issued_to), ("Purpose", c.purpose),
        ("Issued at (UTC)", c.issued_at), ("Requested by", c.issued_by),
        ("Packet", c.packet_id), ("Created (UTC)", header.created),
        ("Channel", m.channel_id), ("Case reference", m.case_reference or "-"),
        ("Legal basis", m.legal_basis or "-"),
        ("Classification", f"{m.classification}; handling {m.handling}; "
                           f"evaluation {m.evaluation}"),
        ("Sender", f"{header.sender.id}, key {header.sender.key_id}"
                   + (f", fingerprint {sender.keys.fingerprint}" if sender else "")),
        ("Recipients", ", ".join(f"{r.id} (key {r.key_id})" for r in header.recipients)),
    ]


def _checks(pdf: _Document, report: Report) -> None:
    pdf.heading("Verification when this document was printed")
    verdict = "ALL CHECKS HOLD" if report.ok else "SOME CHECKS DO NOT HOLD"
    pdf.set_font(SANS, "B", 10)
    pdf.cell(0, 6, verdict, new_x="LMARGIN", new_y="NEXT")
    for check in report.checks:
        pdf.set_font(SANS, "B", 8)
        pdf.cell(8, 4.2, "OK" if check.ok else "FAIL")
        pdf.cell(40, 4.2, latin1(check.name))
        pdf.set_font(SANS, size=8)
        pdf.multi_cell(0, 4.2, latin1(check.detail), new_x="LMARGIN", new_y="NEXT",
                       align="L")
    for note in report.notes:
        pdf.para(f"Note: {note}", size=8)


def _custody(pdf: _Document, bundle: Bundle) -> None:
    pdf.heading("Chain of custody (from the ledger entries)")
    pdf.set_font(SANS, size=7.5)
    heading = FontFace(emphasis="BOLD", fill_color=(225, 225, 225))
    with pdf.table(col_widths=(7, 27, 38, 22, 26, 45, 15), headings_style=heading,
                   line_height=3.8, text_align="LEFT") as table:
        table.row(["#", "Time (UTC)", "Event", "Released by", "Received by", "Authority",
                   "Entry"])
        for n, step in enumerate(bundle.certificate.custody, 1):
            table.row([str(n), step.time.replace("T", " "), latin1(step.event),
                       latin1(step.released_by or "-"), latin1(step.received_by or "-"),
                       latin1(step.authority), str(step.ledger_index)])
    basis = {s.legal_basis for s in bundle.certificate.custody if s.legal_basis}
    pdf.para(f"Legal basis of every step: {', '.join(sorted(basis)) or 'not stated'}.", 8)


def _digests(pdf: _Document, bundle: Bundle, header: PacketHeader,
             statement: Statement | None) -> None:
    pdf.heading("Digests (SHA-256, as sha256sum prints them)")
    header_sha = hashlib.sha256(bundle.certificate.header.data).hexdigest()
    lines = [f"{header_sha}  packet-header (signed by the sender)"]
    lines += [f"{s.sha256}  ciphertext-stream-{i} ({s.length} bytes)"
              for i, s in enumerate(header.streams)]
    pdf.mono(lines)
    if statement is None:
        pdf.para("No recipient disclosed the plaintext digests: evidence files cannot be "
                 "checked against this certificate.", 8)
        return
    pdf.para(f"Plaintext digests the sender signed, disclosed by "
             f"{bundle.disclosure.disclosed_by if bundle.disclosure else '-'}:", 8)
    plain = [f"{statement.message.sha256}  (message, {statement.message.length} bytes)"]
    plain += [f"{a.sha256}  {a.name}" for a in statement.attachments]
    pdf.mono(plain)


def _keys(pdf: _Document, bundle: Bundle) -> None:
    pdf.heading("Keys and ledger")
    proof = parse_tlog_proof(bundle.certificate.events[0].proof)
    body, _, signatures = proof.note.partition("\n\n")
    origin, size, root = body.split("\n")[:3]
    policy = parse_policy(bundle.certificate.policy)
    pdf.para("Seal key (the centre's; pin it with --trusted-key) and ledger key:", 8)
    pdf.mono([bundle.seal.key, str(policy.logs[0])])
    pdf.facts([("Checkpoint", f"{origin}, tree size {size}"), ("Root (base64)", root),
               ("Witnesses", ", ".join(name for name, _ in policy.witnesses) or "none listed"),
               ("Witness quorum", policy.quorum)])
    pdf.para("Checkpoint signature lines (log, then witnesses):", 8)
    pdf.mono([line for line in signatures.split("\n") if line], size=6.5)
    if bundle.refresh is not None:
        pdf.para("Refreshed to a newer checkpoint:", 8)
        pdf.mono(bundle.refresh.checkpoint.strip().split("\n"), size=6.5)


HOW_TO = (
    "1. Obtain the centre's seal key through a channel you trust (not from this document) and "
    "compare it with the seal key printed above.",
    "2. Save the attached file {name} (PDF readers list it under attachments; or run "
    "'pdfdetach -saveall certificate.pdf').",
    "3. Run: cadena certificate verify {name} --trusted-key '<seal key>' "
    "[--policy court.policy] [--evidence FILE ...]. It needs no network and prints what holds "
    "and what does not.",
    "4. Independently of Cadena: each events[].proof is a C2SP tlog-proof (c2sp.org/tlog-proof) "
    "of the base64-decoded events[].entry; certificate.policy is a C2SP tlog-policy; any "
    "implementation of those formats can check the proofs and cosignatures.",
    "5. For an evidence file, compare the output of 'sha256sum FILE' with the plaintext digests "
    "above; they are signed by the sender and bound to a recipient's signed receipt.",
)


def render_pdf(data: bytes) -> bytes:
    """The printable certificate of the bundle ``data``, with ``data`` attached verbatim."""
    report = check_certificate(data)
    bundle = report.bundle
    if bundle is None:
        raise PdfError(f"not a certificate: {report.checks[0].detail}")
    header = PacketHeader.from_bytes(bundle.certificate.header.data)
    disclosed = bundle.disclosure
    statement = Statement.from_bytes(disclosed.statement.data) if disclosed else None
    name = f"certificate-{bundle.certificate.id}.json"
    pdf = _Document(f"Custody certificate {bundle.certificate.id}")
    pdf.set_creation_date(datetime.fromisoformat(bundle.certificate.issued_at))
    pdf.set_title(f"Custody certificate {bundle.certificate.id}")
    pdf.add_page()
    pdf.set_font(SANS, "B", 16)
    pdf.cell(0, 10, "Custody certificate", new_x="LMARGIN", new_y="NEXT")
    pdf.para("Chain of custody of an information packet exchanged through Cadena, from the "
             "centre's verifiable audit ledger.", 9)
    pdf.facts(_facts(bundle, header))
    _checks(pdf, report)
    _custody(pdf, bundle)
    _digests(pdf, bundle, header, statement)
    _keys(pdf, bundle)
    pdf.heading("How to verify this certificate independently")
    for step in HOW_TO:
        pdf.para(step.format(name=name), 8.5)
    pdf.embed_file(bytes=data, basename=name, mime_type="application/json", compress=True,
                   desc="Custody certificate (machine-readable bundle)",
                   modification_date=datetime.fromisoformat(bundle.certificate.issued_at))
    return bytes(pdf.output())
