"""The court's page: check a custody certificate, and evidence files, with no account.

It needs no profile, no unlock and no network: the certificate (the JSON
bundle, or the PDF with the bundle attached) is read from the upload into
memory (at most :data:`~client.desk.app.CERTIFICATE_LIMIT`), each evidence
file is only hashed as it arrives (:class:`~client.desk.uploads.DigestSink`),
and nothing is written to disk. The checks are those of ``cadena certificate
verify`` (:func:`client.certificate.verify.check_certificate`); the page
names each in the reader's language, says whether it holds, and says why in
that language too: the verifier gives each detail and note as a message id
with parameters (:class:`~client.certificate.messages.Message`), translated
here through the desk's catalogs; digests, ids and names stay as they are,
counts and times are written in the reader's locale. A reason quoted from a parser or a
library (an exception's text, a parameter) stays as that code wrote it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from client.certificate.messages import Message, Param, Time
from client.certificate.verify import Report, Trust, check_certificate
from client.desk.i18n import N_, _, format_datetime, format_number
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

# Every message id the verifier (client/certificate) can produce, marked for the catalogs'
# extraction; tests/desk/test_court_messages.py enumerates the ids from the verifier's source
# and fails while one is missing here or untranslated in a catalog.
VERIFIER_MESSAGES = (
    N_("%(count)s hand-offs, as the ledger entries give them"),
    N_("%(count)s key shares: %(names)s"),
    N_("%(count)s signed receipts: %(names)s"),
    N_("%(digest)s  matches attachment %(name)s"),
    N_("%(digest)s  matches no digest the sender signed"),
    N_("%(digest)s  matches the message"),
    N_("%(entries)s entries about packet %(packet)s, %(enrolments)s enrolments"),
    N_("%(entries)s entries proven in the tree of size %(size)s"),
    N_("%(error)s: %(reason)s"),
    N_("%(granted)s granted and %(refused)s refused actions; held by %(holders)s"),
    N_("%(granted)s granted and %(refused)s refused actions; held by %(holders)s; withdrawn"),
    N_("%(keys)s"),
    N_("%(liaison)s (key %(key)s…, enrolled at entry %(index)s)"),
    N_("%(logged)s granted %(action)s entries but %(count)s signed objects"),
    N_("%(reason)s"),
    N_("%(what)s is not a valid ledger entry: %(reason)s"),
    N_("0 key shares"),
    N_("0 signed receipts: none"),
    N_("a key share does not verify: %(reason)s"),
    N_("a proof is not a C2SP tlog-proof: %(reason)s"),
    N_("a receipt does not verify: %(reason)s"),
    N_("an enrolment"),
    N_("an enrolment entry is listed twice"),
    N_("certificate %(id)s"),
    N_("checkpoint %(size)s"),
    N_("entry %(index)s (%(action)s) is by the system, not a liaison"),
    N_("entry %(index)s does not record the receipt of %(liaison)s"),
    N_("entry %(index)s does not record the share by %(liaison)s"),
    N_("entry %(index)s follows entry %(previous)s: not in ledger order"),
    N_("entry %(index)s is about %(subject)s, not the packet"),
    N_("entry %(index)s is dated before entry %(previous)s"),
    N_("entry %(index)s is not in the signed tree: %(reason)s"),
    N_("entry %(index)s: %(action)s by %(who)s, who holds no key"),
    N_("entry %(index)s: %(action)s by %(who)s, who is no party to the packet"),
    N_("entry %(index)s: %(action)s by %(who)s, who is not the originator"),
    N_("entry %(index)s: %(action)s for %(who)s after the withdrawal"),
    N_("entry %(index)s: %(recipient)s held the packet already"),
    N_("entry %(index)s: %(who)s used key %(key)s, not the key the packet was wrapped to"),
    N_("entry %(index)s: a second submission"),
    N_("entry %(index)s: H2 share by %(who)s to %(recipient)s without the originator's "
       "approval of that holder's request"),
    N_("entry %(index)s: issued by %(issuer)s at %(issued)s"),
    N_("event %(number)s"),
    N_("H1: no permission of the originator for %(court)s"),
    N_("issued at %(issued)s, but the entry is dated %(dated)s"),
    N_("key %(key)s is listed twice"),
    N_("key %(key)s of %(liaison)s: entry %(index)s does not enrol this key for this liaison"),
    N_("key %(key)s of %(liaison)s: its enrolment entry %(index)s is not in the certificate"),
    N_("needs the ledger entries"),
    N_("needs the verified checkpoint"),
    N_("needs the verified packet header"),
    N_("no certificate"),
    N_("no granted entry: the packet was never submitted"),
    N_("no listed witness"),
    N_("no refresh"),
    N_("no signed receipt of %(liaison)s binds this statement"),
    N_("no single %(action)s entry carries this signature"),
    N_("no statement disclosed"),
    N_("no verified statement to compare with (disclose the statement)"),
    N_("not checked: %(reason)s"),
    N_("quorum %(quorum)s does not hold: cosigned by %(cosigned)s"),
    N_("quorum %(quorum)s holds on %(where)s (cosigned by %(cosigned)s)"),
    N_("receipt"),
    N_("sealed by %(key)s"),
    N_("share"),
    N_("signed by %(liaison)s (key %(key)s)"),
    N_("signed by the sender, bound by the receipt of %(liaison)s; %(count)s attachment digests"),
    N_("statement"),
    N_("step %(number)s says %(got)s but the ledger gives %(want)s"),
    N_("the certificate holds no enrolled key %(key)s of %(liaison)s (%(what)s)"),
    N_("the certificate lists no ledger entry"),
    N_("the certificate's tlog-policy is invalid: %(reason)s"),
    N_("the checkpoint signature does not verify: %(reason)s"),
    N_('the first granted entry (%(index)s, %(action)s) is not the submission by the sender '
       '%(sender)s'),
    N_("the header is of packet %(packet)s, not %(expected)s"),
    N_("the header signature verifies with no key in the certificate"),
    N_("the header's signer is not the enrolled sender it names"),
    N_("the issue entry is not by %(issuer)s"),
    N_('the last entry (%(index)s, %(action)s) does not issue this certificate to %(court)s '
       'for %(purpose)s'),
    N_("the narrative has %(steps)s steps, the ledger gives %(derived)s"),
    N_("the policy lists no log for the checkpoint origin %(origin)s"),
    N_("the proof of entry %(index)s is for index %(proven)s"),
    N_("the proofs name %(count)s different checkpoints, not one"),
    N_("the receipt of %(liaison)s names another packet or content"),
    N_("the refreshed checkpoint does not extend the certificate's: %(reason)s"),
    N_("the refreshed one"),
    N_("the seal key is malformed: %(reason)s"),
    N_('the seal key was taken from the certificate itself (%(key)s); compare it with the '
       "centre's published key or give --trusted-key"),
    N_("the share by %(liaison)s names another packet"),
    N_("the statement does not verify with the sender's key: %(reason)s"),
    N_("the statement is about another packet"),
    N_("the submission entry %(index)s does not carry the header signature and digest"),
    N_("the witness policy is the certificate's own (sealed by the centre); give --policy "
       "to apply the court's"),
    N_("tree size %(size)s is a prefix of the signed tree of size %(newer)s"),
    N_("tree size %(size)s, signed by %(log)s"),
)




@dataclass(frozen=True)
class ShownCheck:
    """A check as the page shows it: its name in the reader's language, holds, detail."""

    name: str
    ok: bool
    detail: str


# The verifier's notes name the command line's flags; the court page names its own fields.
DESK_WORDING: dict[str, str] = {
    "the seal key was taken from the certificate itself (%(key)s); compare it with the "
    "centre's published key or give --trusted-key":
        N_("the seal key was taken from the certificate itself (%(key)s); compare it with the "
           "centre's published key, or enter that key in \"The centre's seal key\" and verify "
           "again"),
    "the witness policy is the certificate's own (sealed by the centre); give --policy "
    "to apply the court's":
        N_("the witness policy is the certificate's own (sealed by the centre); enter the "
           "court's own in \"The court's policy\" and verify again to apply it"),
}


def render_message(message: Message) -> str:
    """``message`` in the reader's language: each parameter rendered, then put in place."""
    wording = DESK_WORDING.get(message.id, message.id)
    return _(wording, **{key: _param(value) for key, value in message.params.items()})


def _param(value: Param) -> str:
    if isinstance(value, tuple):
        return ", ".join(render_message(item) for item in value)
    if isinstance(value, Message):
        return render_message(value)
    if isinstance(value, int):
        return format_number(value)
    if isinstance(value, Time):
        return _moment(value.text)
    return value


def _moment(text: str) -> str:
    try:
        return format_datetime(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        return text


def _shown(report: Report) -> list[ShownCheck]:
    shown = []
    for check in report.checks:
        if check.name.startswith(EVIDENCE_PREFIX):
            name = _("Evidence file %(name)s", name=check.name[len(EVIDENCE_PREFIX):])
        else:
            name = _(CHECK_NAMES.get(check.name, check.name))
        shown.append(ShownCheck(name, check.ok, render_message(check.message)))
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
        "notes": [render_message(note) for note in report.note_messages],
        "issued": _issued(report),
        "evidence": {name: sink.size for name, sink in evidence.items()},
        "failures": len(report.failures()), "pinned": trust.seal_key is not None})


def _issued(report: Report) -> str:
    if report.bundle is None:
        return "-"
    return _moment(report.bundle.certificate.issued_at)


def _again(request: Request, errors: dict[str, str],
           values: dict[str, str] | None = None) -> Response:
    return render(request, "court/form.html", {"errors": errors, "values": values or {}},
                  status=400)


section = Section(key="court", title=N_("Court"), needs_unlock=False,
                  routes=[Route("/", form, methods=["GET"]),
                          Route("/", check, methods=["POST"])])
