"""The court's page: check a custody certificate, and evidence files, with no account.

It needs no profile, no unlock and no network: the certificate (the JSON
bundle, or the PDF with the bundle attached) is read from the upload into
memory (at most :data:`~client.desk.app.CERTIFICATE_LIMIT`), each evidence
file is only hashed as it arrives (:class:`~client.desk.uploads.DigestSink`),
and nothing is written to disk. The checks are those of ``cadena certificate
verify`` (:func:`client.certificate.verify.check_certificate`); the page
names each in the reader's language and says whether it holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from client.certificate.verify import Report, Trust, check_certificate
from client.desk.i18n import N_, _, format_datetime
from client.desk.pages import Section, blocking, render
from client.desk.uploads import DigestSink, MemorySink, Sink, TooLarge, stream_form
from client.errors import UsageError
from custody import parse_policy, seal_key
from ledger import LedgerError

CERTIFICATE_LIMIT = 32 << 20
"""Largest certificate file read (in memory)."""
UPLOAD_LIMIT = 8 << 30
"""Largest upload in all (evidence files are hashed as they arrive, never kept)."""

CHECK_NAMES = {
    "certificate format": N_("Certificate format"),
    "ledger entries": N_("Ledger entries"),
    "checkpoint signature": N_("Checkpoint signature"),
    "inclusion proofs": N_("Inclusion proofs"),
    "witness cosignatures": N_("Witness cosignatures"),
    "refresh": N_("Refresh"),
    "key enrolments": N_("Key enrolments"),
    "packet header": N_("Packet header"),
    "receipts": N_("Receipts"),
    "key shares": N_("Key shares"),
    "custody chain": N_("Custody chain"),
    "custody narrative": N_("Custody narrative"),
    "certificate issue": N_("Certificate issue"),
    "disclosed statement": N_("Disclosed statement"),
    "seal": N_("Seal"),
}
EVIDENCE_PREFIX = "evidence "


@dataclass(frozen=True)
class ShownCheck:
    """A check as the page shows it: its name in the reader's language, holds, detail."""

    name: str
    ok: bool
    detail: str


def _shown(report: Report) -> list[ShownCheck]:
    shown = []
    for check in report.checks:
        if check.name.startswith(EVIDENCE_PREFIX):
            name = _("Evidence file %(name)s", name=check.name[len(EVIDENCE_PREFIX):])
        else:
            name = _(CHECK_NAMES.get(check.name, check.name))
        shown.append(ShownCheck(name, check.ok, check.detail))
    return shown


def _certificate_bytes(data: bytes) -> bytes:
    if data.startswith(b"%PDF"):
        from client.certificate.pdf import PdfError, extract_bundle  # fpdf2 loads only here

        try:
            return extract_bundle(data)
        except PdfError as exc:
            raise UsageError(str(exc)) from exc
    return data


def _trust(seal: str, policy: str) -> Trust:
    try:
        return Trust(seal_key=seal_key(seal) if seal else None,
                     policy=parse_policy(policy) if policy else None)
    except LedgerError as exc:
        raise UsageError(str(exc)) from exc


async def form(request: Request) -> Response:
    """The form: a certificate, evidence files, and the trust material the court holds."""
    return render(request, "court/form.html", {"errors": {}, "values": {}})


async def check(request: Request) -> Response:
    """Check the uploaded certificate (and evidence) and show every check."""
    certificate = MemorySink(CERTIFICATE_LIMIT)
    evidence: dict[str, DigestSink] = {}

    def sink_for(name: str, filename: str) -> Sink | None:
        if name == "certificate":
            return certificate
        if name == "evidence":
            evidence[filename] = evidence.get(filename) or DigestSink()
            return evidence[filename]
        return None

    try:
        fields = await stream_form(request, sink_for, limit=UPLOAD_LIMIT)
    except TooLarge:
        return _again(request, {"certificate": _("The file is too large to be a certificate.")})
    values = {k: (fields.get(k) or [""])[0].strip() for k in ("seal_key", "policy")}
    if not certificate.data:
        return _again(request, {"certificate": _("Choose the certificate file.")}, values)
    try:
        trust = _trust(values["seal_key"], values["policy"])
    except UsageError as exc:
        return _again(request, {"seal_key": _("This is not a valid key or policy: %(reason)s",
                                              reason=str(exc))}, values)
    try:
        data = _certificate_bytes(bytes(certificate.data))
    except UsageError:
        return _again(request, {"certificate": _(
            "This PDF holds no certificate: open the file the centre issued.")}, values)
    digests = {name: sink.hexdigest() for name, sink in evidence.items()}
    report = await blocking(check_certificate, data, trust, digests)
    return render(request, "court/report.html", {
        "report": report, "checks": _shown(report), "bundle": report.bundle,
        "issued": _issued(report),
        "evidence": {name: sink.size for name, sink in evidence.items()},
        "failures": len(report.failures()), "pinned": trust.seal_key is not None})


def _issued(report: Report) -> str:
    if report.bundle is None:
        return "-"
    text = report.bundle.certificate.issued_at
    try:
        return format_datetime(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        return text


def _again(request: Request, errors: dict[str, str],
           values: dict[str, str] | None = None) -> Response:
    return render(request, "court/form.html", {"errors": errors, "values": values or {}},
                  status=400)


section = Section(key="court", title=N_("Court"), needs_unlock=False,
                  routes=[Route("/", form, methods=["GET"]),
                          Route("/", check, methods=["POST"])])
