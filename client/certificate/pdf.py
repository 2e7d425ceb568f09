"""The printable custody certificate (fpdf2), with the machine bundle attached.

The PDF is for people: the facts (a withdrawal marked), the people the
enrolment entries describe, the custody table, every refused attempt, digests
in hex laid out as ``sha256sum`` prints them, the keys, the witness quorum as
*k of n*, and how to verify the certificate independently. It proves nothing
by itself and claims no verdict: it says who sealed it and how to check that
(the proof is the attached bundle, ``certificate-<id>.json``, a PDF file
attachment, which :func:`extract_bundle` or ``pdfdetach`` recovers byte for
byte for ``cadena certificate verify``).

Prose uses the PDF core font Helvetica (characters outside Latin-1 replaced
in the printed text only). Lines a person must copy — keys, digests, the
checkpoint's signature lines with their ``—`` (U+2014, C2SP signed-note) —
use DejaVu Sans Mono, shipped beside this module (``fonts/``, its licence
there), so that they print exactly whatever fonts the machine has; a line too
long for the page is broken with a visible mark, :data:`CONTINUED`.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from fpdf import FPDF
from fpdf.fonts import FontFace

from client.certificate.verify import Report, check_certificate
from crypto import PacketHeader, Statement
from custody import Bundle, Policy, parse_policy
from ledger import Entry, format_time, parse_entry, parse_tlog_proof

_EMBEDDED = re.compile(rb"<<((?:(?!>>\s*stream)[\s\S]){0,2000}?/Type\s*/EmbeddedFile[\s\S]{0,200}?)"
                       rb">>\s*stream\r?\n")
_LENGTH = re.compile(rb"/Length\s+(\d+)")
_REPLACE = str.maketrans({"\u2014": "-", "\u2013": "-", "\u2192": "->", "\u2026": "...",
                          "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})
MONO = "dejavu-mono"
MONO_FILE = Path(__file__).resolve().parent / "fonts" / "DejaVuSansMono.ttf"
SANS = "helvetica"
CONTINUED = "\u21a9"
"""Ends a copied line that goes on on the next one (never part of a key or digest)."""


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
        self.add_font(MONO, "", str(MONO_FILE))
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
        """A section title with a rule under it, never alone at the foot of a page."""
        if self.get_y() > self.h - self.b_margin - 30:
            self.add_page()
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
        """Lines to copy, exactly, in a fixed-width font; broken only with :data:`CONTINUED`."""
        self.set_font(MONO, size=size)
        fits = int(self.epw / self.get_string_width("0")) - 1
        for line in lines:
            while len(line) > fits:
                self.cell(0, 3.8, line[:fits - 2] + " " + CONTINUED, new_x="LMARGIN",
                          new_y="NEXT")
                line = line[fits - 2:]
            self.cell(0, 3.8, line, new_x="LMARGIN", new_y="NEXT")
        self.ln(1)

    def para(self, paragraph: str, size: float = 9) -> None:
        """A left-aligned paragraph."""
        self.set_font(SANS, size=size)
        self.multi_cell(0, 4.6, latin1(paragraph), new_x="LMARGIN", new_y="NEXT",
                        align="L")


def _entries(bundle: Bundle) -> list[Entry]:
    return [parse_entry(e.entry) for e in bundle.certificate.events]


def _status(bundle: Bundle) -> str:
    """Active, or withdrawn: by whom, when, why (from the withdrawal entry)."""
    for entry in _entries(bundle):
        if entry.action == "packet.withdraw" and entry.outcome == "granted":
            who = entry.actor.liaison if entry.actor else "system"
            reason = entry.details.get("reason")
            return (f"WITHDRAWN by {who} at {format_time(entry.time)} (ledger entry "
                    f"{entry.index})" + (f": {reason}" if reason else ""))
    return "active"


def _facts(bundle: Bundle, header: PacketHeader) -> list[tuple[str, str]]:
    c, m = bundle.certificate, header.meta
    keys = {k.keys.key_id: k for k in c.keys}
    sender = keys.get(header.sender.key_id)
    return [
        ("Certificate", c.id), ("Issued to", c.issued_to), ("Purpose", c.purpose),
        ("Issued at (UTC)", c.issued_at), ("Requested by", c.issued_by),
        ("Packet", c.packet_id), ("Status", _status(bundle)), ("Created (UTC)", header.created),
        ("Channel", m.channel_id), ("Case reference", m.case_reference or "-"),
        ("Legal basis", m.legal_basis or "-"),
        ("Classification", f"{m.classification}; handling {m.handling}; "
                           f"evaluation {m.evaluation}"),
        ("Sender", f"{header.sender.id}, key {header.sender.key_id}"),
        # A row of its own, so that the fingerprint prints on one line.
        ("Sender fingerprint", sender.keys.fingerprint if sender else "-"),
        ("Recipients", ", ".join(f"{r.id} (key {r.key_id})" for r in header.recipients)),
    ]


def _seal(pdf: _Document, bundle: Bundle, report: Report) -> None:
    """What is true of the document itself: who sealed it, how to check it; no verdict."""
    pdf.heading("Seal")
    pdf.para("This certificate is sealed by the key below. Verify it with 'cadena certificate "
             "verify' against the centre's published key, obtained independently (step 1 "
             "at the end); this printout is not the proof.", 8.5)
    pdf.mono([f"sealed by {bundle.seal.key}"])
    failed = [c.name for c in report.failures()]
    if failed:  # a fact about this file: say it, in plain words
        pdf.para(f"When this document was printed, these checks of the attached bundle did "
                 f"not hold: {', '.join(failed)}.", 8.5)


def _people(pdf: _Document, bundle: Bundle) -> None:
    """Every liaison the certificate names: name, state and role as sealed, checked against
    their enrolment entries where the certificate has them."""
    enrolled: dict[str, tuple[str, str]] = {}
    for item in bundle.certificate.enrolments:
        entry = parse_entry(item.entry)
        if entry.action == "liaison.enrol":
            enrolled[entry.subject["id"]] = (str(entry.details.get("state", "-")),
                                             str(entry.details.get("role", "-")))
    sealed = {p.liaison: p for p in bundle.certificate.people}
    named = sorted({e.actor.liaison for e in _entries(bundle) if e.actor}
                   | {bundle.certificate.issued_by} | set(enrolled) | set(sealed))
    pdf.heading("People")
    pdf.set_font(SANS, size=8)
    with pdf.table(col_widths=(30, 45, 15, 25, 65), line_height=4, text_align="LEFT",
                   headings_style=FontFace(emphasis="BOLD", fill_color=(225, 225, 225))
                   ) as table:
        table.row(["Liaison", "Name", "State", "Role", "Enrolment entry"])
        for who in named:
            person = sealed.get(who)
            state, role = (person.state, person.role) if person else enrolled.get(who, ("-", "-"))
            if who not in enrolled:
                source = "not in this certificate"
            elif enrolled[who] == (state, role):
                source = "states the same state and role"
            else:
                source = f"states {enrolled[who][0]}, {enrolled[who][1]} (at enrolment)"
            table.row([latin1(who), latin1(person.name if person else "-"), latin1(state),
                       latin1(role), source])
    pdf.para("Name, state and role as the centre's directory stated them when it sealed the "
             "certificate (covered by the seal); liaison ids are what the entries and "
             "signatures use.", 7.5)


def _refusals(pdf: _Document, bundle: Bundle) -> None:
    """Every refused attempt among the entries, with the rule's reason code."""
    denied = [e for e in _entries(bundle) if e.outcome == "denied"]
    pdf.heading(f"Refused attempts ({len(denied)})")
    if not denied:
        pdf.para("The ledger records no refused attempt about this packet.", 8)
        return
    pdf.set_font(SANS, size=7.5)
    with pdf.table(col_widths=(15, 35, 30, 40, 60), line_height=3.8, text_align="LEFT",
                   headings_style=FontFace(emphasis="BOLD", fill_color=(225, 225, 225))
                   ) as table:
        table.row(["Entry", "Time (UTC)", "By", "Action", "Reason"])
        for e in denied:
            table.row([str(e.index), format_time(e.time).replace("T", " "),
                       latin1(e.actor.liaison if e.actor else "unauthenticated"),
                       latin1(e.action), latin1(e.reason or "-")])


def _custody(pdf: _Document, bundle: Bundle) -> None:
    pdf.heading("Chain of custody (from the ledger entries)")
    # Small enough that a 32-digit key id fits a line of the Event and Authority
    # columns: a table wraps long words anywhere, and a key id must print unbroken.
    pdf.set_font(SANS, size=6.5)
    heading = FontFace(emphasis="BOLD", fill_color=(225, 225, 225))
    with pdf.table(col_widths=(7, 24, 46, 19, 22, 46, 16), headings_style=heading,
                   line_height=3.4, text_align="LEFT") as table:
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


def quorum_text(policy: Policy) -> str:
    """The policy's quorum as people read it: "k of n witnesses (names)"."""
    total = len(policy.witnesses)
    if policy.quorum == "none":
        return f"none required (0 of {total} witnesses)"
    group = next((g for g in policy.groups if g.name == policy.quorum), None)
    if group is None:  # the quorum names one witness
        return f"1 of {total} witnesses ({policy.quorum})"
    return (f"{group.threshold} of {len(group.members)} witnesses "
            f"({', '.join(group.members)})")


def _keys(pdf: _Document, bundle: Bundle) -> None:
    pdf.heading("Keys and ledger")
    proof = parse_tlog_proof(bundle.certificate.events[0].proof)
    body, _, signatures = proof.note.partition("\n\n")
    origin, size, root = body.split("\n")[:3]
    policy = parse_policy(bundle.certificate.policy)
    pdf.para("Seal key (the centre's; pin it with --trusted-key) and ledger key:", 8)
    pdf.mono([bundle.seal.key, str(policy.logs[0])])
    pdf.facts([("Checkpoint", f"{origin}, tree size {size}")])
    pdf.mono([f"root {root}"])
    pdf.facts([
               ("Witnesses", ", ".join(name for name, _ in policy.witnesses) or "none listed"),
               ("Witness quorum", quorum_text(policy))])
    pdf.para("Checkpoint signature lines (log, then witnesses), to copy exactly:", 8)
    pdf.mono([line for line in signatures.split("\n") if line], size=6.5)
    pdf.mono([f"{CONTINUED} at the end of a line above: it goes on on the next line; copy "
              "it without the mark and the break"], size=6.5)
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
    _seal(pdf, bundle, report)
    _people(pdf, bundle)
    _custody(pdf, bundle)
    _refusals(pdf, bundle)
    _digests(pdf, bundle, header, statement)
    _keys(pdf, bundle)
    pdf.heading("How to verify this certificate independently")
    for step in HOW_TO:
        pdf.para(step.format(name=name), 8.5)
    pdf.embed_file(bytes=data, basename=name, mime_type="application/json", compress=True,
                   desc="Custody certificate (machine-readable bundle)",
                   modification_date=datetime.fromisoformat(bundle.certificate.issued_at))
    return bytes(pdf.output())
