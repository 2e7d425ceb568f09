"""``cadena certificate``: issue, verify offline, print, refresh and disclose custody certificates.

``verify`` and ``pdf`` need no network, no account and no profile: a court
runs them on the file it received (a ``.json`` bundle, or the PDF with the
bundle attached). ``issue``, ``collect``, ``permit``, ``refresh`` and ``key``
talk to the server with the profile's credentials; ``issue``, ``collect`` and
``refresh`` (a re-issue) wait, within ``--wait``, for the witnesses to cosign
a checkpoint covering the certificate, printing what they wait for on stderr.
Exit codes as for every ``cadena`` command: 0 ok, 1 the certificate does not
verify, 2 usage, 3 refused, 4 server (and a certificate still pending).
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from client.certificate.api import CertificatesAPI, CertificateState
from client.certificate.refresh import certificate_size, disclose_statement
from client.certificate.verify import Report, Trust, check_certificate
from client.cli.common import JsonOpt, ProfileOpt, connect, err, guarded, out, print_json
from client.errors import UsageError
from custody import Bundle, CertificateFormatError, parse_bundle, parse_policy, seal_key
from ledger import LedgerError

certificate_app = typer.Typer(no_args_is_help=True, help=(
    "Custody certificates: issue, verify offline, print as PDF, refresh, disclose."))

FileArg = Annotated[Path, typer.Argument(help="The certificate (.json bundle or its PDF).")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Where to write the result.")]
CHUNK = 1 << 20


def read_certificate(path: Path) -> bytes:
    """The bundle bytes of a certificate file (taken out of the PDF if it is one)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc}") from exc
    if data.startswith(b"%PDF"):
        from client.certificate.pdf import PdfError, extract_bundle  # see pdf() below

        try:
            return extract_bundle(data)
        except PdfError as exc:
            raise UsageError(f"{path}: {exc}") from exc
    return data


def _bundle(data: bytes) -> Bundle:
    try:
        return parse_bundle(data)
    except CertificateFormatError as exc:
        raise UsageError(f"not a custody certificate: {exc}") from exc


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file, streamed (evidence files may be large)."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise UsageError(f"cannot read evidence {path}: {exc}") from exc
    return digest.hexdigest()


def _trust(trusted_key: str | None, policy: Path | None) -> Trust:
    try:
        key = seal_key(trusted_key) if trusted_key else None
        court = parse_policy(policy.read_text("utf-8")) if policy else None
    except (LedgerError, OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"bad trust material: {exc}") from exc
    return Trust(seal_key=key, policy=court)


def print_report(report: Report) -> None:
    """The report as a clerk reads it: what holds, what does not, and why."""
    console, bundle = out(), report.bundle
    if bundle is not None:
        c = bundle.certificate
        console.print(f"Custody certificate {c.id}", markup=False)
        console.print(f"  packet {c.packet_id}, issued to {c.issued_to} for {c.purpose}",
                      markup=False)
        console.print(f"  issued {c.issued_at} at the request of {c.issued_by}", markup=False)
    console.print("")
    for check in report.checks:
        mark = "HOLDS        " if check.ok else "DOES NOT HOLD"
        console.print(f"  {mark}  {check.name}: {check.detail}", markup=False)
    for note in report.notes:
        console.print(f"\n  Note: {note}", markup=False)
    failed = [c.name for c in report.failures()]
    verdict = ("VALID: every check holds." if report.ok else
               f"NOT VALID: {len(failed)} check(s) do not hold: {', '.join(failed)}.")
    console.print(f"\nResult: {verdict}", markup=False)


def _report_json(report: Report) -> dict[str, Any]:
    return {"ok": report.ok, "notes": report.notes,
            "note_messages": [note.as_json() for note in report.note_messages],
            "certificate": report.bundle.certificate.id if report.bundle else None,
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail,
                        "message": c.message.as_json()} for c in report.checks]}


@certificate_app.command("verify")
@guarded
def verify(
    file: FileArg,
    evidence: Annotated[list[Path] | None, typer.Option(
        "--evidence", help="A file whose SHA-256 must be one the sender signed (repeatable).")
    ] = None,
    trusted_key: Annotated[str | None, typer.Option(
        "--trusted-key", help="The centre's seal key, obtained independently.")] = None,
    policy: Annotated[Path | None, typer.Option(
        "--policy", help="The court's C2SP tlog-policy (ledger key, witnesses, quorum).")
    ] = None,
    *, as_json: JsonOpt = False,
) -> None:
    """Check a certificate offline and say what holds and what does not (exit 1 if invalid)."""
    data = read_certificate(file)
    digests = {str(path): sha256_file(path) for path in evidence or []}
    report = check_certificate(data, _trust(trusted_key, policy), digests)
    if as_json:
        print_json(_report_json(report))
    else:
        print_report(report)
    if not report.ok:
        raise typer.Exit(1)


@certificate_app.command("pdf")
@guarded
def pdf(file: FileArg, output: OutOpt) -> None:
    """Render the printable certificate, with the bundle attached to the PDF."""
    # Imported here: fpdf2 and fontTools take a third of a second to import,
    # which every other cadena command (send, fetch...) would pay for nothing.
    from client.certificate.pdf import PdfError, render_pdf

    data = read_certificate(file)
    try:
        rendered = render_pdf(data)
    except PdfError as exc:
        raise UsageError(str(exc)) from exc
    output.write_bytes(rendered)
    out().print(f"wrote {output} ({len(rendered)} bytes; bundle attached)", markup=False)


WaitOpt = Annotated[float, typer.Option(
    "--wait", min=0, help="Seconds to wait for the witnesses' cosignatures before giving up.")]


def _wait(api: CertificatesAPI, state: CertificateState, wait: float) -> bytes:
    """Wait for the sealed bundle, saying on stderr what is awaited whenever it changes."""
    said: list[str] = []

    def progress(now: CertificateState, waited: float) -> None:
        line = f"certificate {now.id}: pending, {now.detail}"
        if not said or said[-1] != line:
            said.append(line)
            err().print(f"{line} ({waited:.0f} s of at most {wait:.0f} s)", markup=False)

    return api.wait(state, wait, progress)


@certificate_app.command("refresh")
@guarded
def refresh(ctx: typer.Context, file: FileArg, output: OutOpt, wait: WaitOpt = 60.0,
            *, profile: ProfileOpt = None) -> None:
    """Re-issue a certificate: a new version sealed against a newer cosigned checkpoint."""
    bundle = _bundle(read_certificate(file))
    with connect(ctx, profile) as conn:
        api = CertificatesAPI(conn.client.session)
        data = _wait(api, api.reissue(bundle.certificate.id), wait)
    fresh = _bundle(data)
    output.write_bytes(data)
    out().print(f"wrote {output}: certificate {fresh.certificate.id}, re-issuing "
                f"{bundle.certificate.id}, proven at tree size {certificate_size(fresh)} "
                f"(was {certificate_size(bundle)})", markup=False)


@certificate_app.command("collect")
@guarded
def collect(ctx: typer.Context,
            certificate: Annotated[str, typer.Argument(help="The certificate id.")],
            output: OutOpt, wait: WaitOpt = 60.0, *, profile: ProfileOpt = None) -> None:
    """Collect a certificate asked for earlier, once the witnesses have cosigned."""
    with connect(ctx, profile) as conn:
        api = CertificatesAPI(conn.client.session)
        data = _wait(api, api.collect(certificate), wait)
    _bundle(data)  # a certificate, strictly parsed, before it is written
    output.write_bytes(data)
    out().print(f"wrote {output}: certificate {certificate}", markup=False)


def _disclose(bundle: Bundle, record: Path, liaison: str) -> Bundle:
    try:
        saved = json.loads(record.read_text("utf-8"))
        statement = base64.b64decode(saved["statement"], validate=True)
        signature = base64.b64decode(saved["statement_signature"], validate=True)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{record} is not a fetched packet record: {exc}") from exc
    return disclose_statement(bundle, statement, signature, liaison)


@certificate_app.command("issue")
@guarded
def issue(
    ctx: typer.Context, packet: Annotated[str, typer.Argument(help="The packet id.")],
    to: Annotated[str, typer.Option("--to", help="The court or authority it is for.")],
    purpose: Annotated[str, typer.Option(help="What the certificate is for.")], *, output: OutOpt,
    disclose: Annotated[Path | None, typer.Option(
        "--disclose", help="Attach the plaintext digests from your fetched packet.json.")
    ] = None,
    wait: WaitOpt = 60.0,
    profile: ProfileOpt = None,
) -> None:
    """Ask the centre for a certificate of a packet, wait until it is sealed; optionally
    disclose its digests."""
    with connect(ctx, profile) as conn:
        api = CertificatesAPI(conn.client.session)
        asked = api.issue(packet, to, purpose)
        err().print(f"certificate {asked.id} recorded; it is sealed once a checkpoint "
                    f"cosigned by {asked.required} witness(es) covers it", markup=False)
        data = _wait(api, asked, wait)
        me = conn.config.liaison or ""
    bundle = _bundle(data)
    if disclose is not None:
        bundle = _disclose(bundle, disclose, me)
        data = bundle.to_bytes()
    output.write_bytes(data)
    out().print(f"wrote {output}: certificate {bundle.certificate.id}", markup=False)


@certificate_app.command("disclose")
@guarded
def disclose(
    file: FileArg, record: Annotated[Path, typer.Argument(help="Your fetched packet.json.")],
    liaison: Annotated[str, typer.Option(help="Your liaison id (whose receipt binds it).")],
    output: OutOpt,
) -> None:
    """Attach the sender-signed plaintext digests (a recipient's disclosure) to a certificate."""
    bundle = _disclose(_bundle(read_certificate(file)), record, liaison)
    output.write_bytes(bundle.to_bytes())
    out().print(f"wrote {output}: statement disclosed by {liaison}", markup=False)


@certificate_app.command("permit")
@guarded
def permit(
    ctx: typer.Context, packet: Annotated[str, typer.Argument(help="The packet id.")],
    court: Annotated[str, typer.Option(help="The court that may use it.")],
    purpose: Annotated[str | None, typer.Option(help="For what.")] = None,
    *, profile: ProfileOpt = None,
) -> None:
    """As the originator, permit judicial use of an H1 packet before a court."""
    with connect(ctx, profile) as conn:
        answer = CertificatesAPI(conn.client.session).permit(packet, court, purpose)
    out().print(f"judicial use of {packet} before {court} permitted "
                f"(ledger entry {answer.get('ledger', {}).get('index')})", markup=False)


@certificate_app.command("key")
@guarded
def key(ctx: typer.Context, profile: ProfileOpt = None) -> None:
    """Print the seal key the server publishes (compare it out of band)."""
    with connect(ctx, profile) as conn:
        out().print(CertificatesAPI(conn.client.session).seal_key(), markup=False)
