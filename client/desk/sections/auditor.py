"""The auditor's pages: the ledger's status, its verification with progress, and export.

- **Status**: the latest checkpoint, opened with the ledger key pinned in the
  profile (never one learnt from the server), its size and root, and each
  cosignature on it, checked against the witnesses of the profile's trust
  roots (an unknown key is shown as such, never counted); the witnesses the
  server submits to; what the last verification of this profile reached.
- **Verification** runs :func:`client.audit.audit_ledger` (what ``cadena
  audit verify`` runs) in a thread of the desk's process; the page polls its
  progress with htmx. It continues from the state the profile keeps
  (``audit-state.json``, shared with the command line): only the new entries
  are downloaded, after a consistency proof from the size verified before. A
  fault stops it and is shown with the first bad index; nothing is stored then.
- **Export** writes the verified ledger (entries and checkpoint: no content,
  no secret) as the command line's ``audit export`` does, into a folder the
  auditor chose (remembered per profile); nothing goes through the browser.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from client.audit import AuditResult, AuditState, audit_ledger, open_signed
from client.desk.i18n import N_, _
from client.desk.pages import (
    AUDITOR,
    Section,
    blocking,
    desk,
    flash,
    read_form,
    redirect,
    render,
    unlocked_client,
)
from client.errors import AuditFailure, AuditFault, ClientError, Forbidden, ProfileError
from client.export import ExportWriter
from client.profile import Profile
from client.sdk import Client
from client.trust import key_fingerprint, load_trust
from ledger import Checkpoint, LedgerError, NoteVerifier, parse_note, verify_cosignature

SETTINGS_FILE = "desk-auditor.json"
"""Per profile: the export folder the auditor chose last."""

FAULTS = {
    AuditFault.BAD_CHECKPOINT_SIGNATURE: N_("The checkpoint is not signed by the ledger key "
                                            "you trust."),
    AuditFault.MALFORMED_ENTRY: N_("An entry is not a well-formed ledger entry."),
    AuditFault.INDEX_MISMATCH: N_("Entries are missing, reordered or inserted."),
    AuditFault.MODIFIED_ENTRY: N_("An entry was changed after it was recorded."),
    AuditFault.ROOT_MISMATCH: N_("The entries do not give the root the checkpoint signs."),
    AuditFault.TRUNCATED: N_("The server serves fewer entries than the checkpoint signs."),
    AuditFault.ROLLBACK: N_("The ledger was rolled back below a size verified before."),
    AuditFault.FORK: N_("The ledger forked: it no longer extends what was verified before."),
    AuditFault.BAD_EXPORT: N_("The export file does not verify."),
    AuditFault.REFUSAL_DETAIL_MISMATCH: N_("A refusal's detail does not match its entry."),
    AuditFault.KEY_LOG_MISMATCH: N_("A checkpoint carries a key log that the entries do not "
                                    "give: the directory of keys it vouches for was altered."),
}


@dataclass
class Verification:
    """One verification running (or run) in the desk's process."""

    full: bool
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    previous_size: int | None = None
    done: int = 0
    total: int = 0
    finished: bool = False
    result: AuditResult | None = None
    failure: AuditFailure | None = None
    error: str = ""

    @property
    def percent(self) -> int:
        """How far it went, 0 to 100."""
        if self.finished:
            return 100
        return int(100 * self.done / self.total) if self.total else 0


RUNS: weakref.WeakKeyDictionary[Any, Verification] = weakref.WeakKeyDictionary()
"""The verification of each running desk (the last one started), by desk."""
_lock = threading.Lock()
_storing = threading.Lock()
"""Held while a verified state is compared with the stored one and written."""


def pinned_key(profile: Profile) -> NoteVerifier:
    """The ledger key of the profile's trust roots (else its pinned one); never the server's."""
    roots = load_trust(profile)
    if roots is not None:
        return roots.ledger
    text = profile.config().ledger_key
    if not text:
        raise ProfileError("this profile has no ledger key to verify with: set the trust roots")
    try:
        return NoteVerifier.from_string(text)
    except LedgerError as exc:
        raise ProfileError(f"the pinned ledger key is not a verifier key: {exc}") from exc


def load_state(profile: Profile) -> AuditState | None:
    """What this profile's last clean verification reached (shared with ``cadena audit``)."""
    data = profile.read_json(profile.audit_path)
    return AuditState.from_json(data) if data is not None else None


@dataclass(frozen=True)
class Cosignature:
    """One signature line on the checkpoint besides the ledger's."""

    name: str
    trusted: bool
    """Made by a witness key of the trust roots, and it verifies."""
    when: datetime | None


def cosignatures(note: str, checkpoint: Checkpoint, profile: Profile,
                 ledger: NoteVerifier) -> list[Cosignature]:
    """The checkpoint's cosignatures, each checked against the trust roots' witnesses."""
    roots = load_trust(profile)
    witnesses = roots.witnesses if roots is not None else ()
    lines = note[note.rfind("\n\n") + 2:].splitlines()
    found = []
    for line, signature in zip(lines, parse_note(note).signatures, strict=True):
        if ledger.matches(signature):
            continue
        when, trusted = None, False
        for witness in witnesses:
            if witness.matches(signature):
                try:
                    when = datetime.fromtimestamp(verify_cosignature(checkpoint, line, witness),
                                                  UTC)
                    trusted = True
                except LedgerError:
                    trusted = False
        found.append(Cosignature(signature.name, trusted, when))
    return found


def _status(client: Client, profile: Profile) -> dict[str, Any]:
    verifier = pinned_key(profile)
    note = client.ledger.checkpoint()
    context: dict[str, Any] = {"ledger_key": str(verifier),
                               "ledger_fingerprint": key_fingerprint(str(verifier))}
    try:
        checkpoint = open_signed(note, verifier)
    except AuditFailure as exc:
        return {**context, "checkpoint": None, "failure": exc, "fault": _(FAULTS[exc.fault])}
    roots = load_trust(profile)
    try:
        listed = client.witnesses.list()
    except Forbidden:  # not an auditor (any other refusal is shown as a problem)
        listed = []
    return {**context, "checkpoint": checkpoint, "root": checkpoint.root.hex(),
            "cosignatures": cosignatures(note, checkpoint, profile, verifier),
            "quorum": roots.quorum if roots else 0, "witnesses": listed,
            "failure": None}


async def index(request: Request) -> Response:
    """The ledger's status, the last verification, and what can be done."""
    client = await blocking(unlocked_client, request)
    profile = desk(request).profile
    status = await blocking(_status, client, profile)
    state = await blocking(_safe_state, profile)
    return render(request, "auditor/index.html", {
        **status, "state": state, "verified_at": _parse_time(state.verified_at) if state else None,
        "job": RUNS.get(desk(request))})


def _safe_state(profile: Profile) -> AuditState | None:
    try:
        return load_state(profile)
    except ProfileError:
        return None


def _parse_time(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def _run(job: Verification, client: Client, profile: Profile) -> None:
    def progress(done: int, total: int) -> None:
        # The total first: a page copies ``done`` before ``total`` (dataclasses.replace
        # reads the fields in order), so it never shows more done than the total.
        job.total = total
        job.done = done

    try:
        verifier = pinned_key(profile)
        state = None if job.full else load_state(profile)
        job.previous_size = state.size if state else None
        job.result = audit_ledger(client.ledger, verifier, state, full=job.full,
                                  progress=progress)
        _keep(profile, job.result.state)
    except AuditFailure as exc:
        job.failure = exc
    except ClientError as exc:
        job.error = str(exc)
    finally:
        job.finished = True


def _keep(profile: Profile, state: AuditState) -> None:
    # A run and an export may verify at once (two tabs): the one that started first, on an
    # older checkpoint, must not store its smaller size over the other's, or the next run
    # would check for a rollback only from there.
    with _storing:
        stored = _safe_state(profile)
        if (stored is not None and stored.verifier_key == state.verifier_key
                and stored.size > state.size):
            return
        profile.write_json(profile.audit_path, state.to_json())


async def verify_start(request: Request) -> Response:
    """Start a verification in the background (one at a time per desk)."""
    form = await read_form(request)
    client = await blocking(unlocked_client, request)
    the_desk = desk(request)
    with _lock:
        running = RUNS.get(the_desk)
        if running is None or running.finished:
            job = Verification(full=form.get("full") == "yes")
            RUNS[the_desk] = job
            threading.Thread(target=_run, args=(job, client, the_desk.profile),
                             name="desk-audit", daemon=True).start()
    return redirect("/auditor/verify")


async def verify_page(request: Request) -> Response:
    """The verification's page: its progress, then its outcome."""
    await blocking(unlocked_client, request)
    job = RUNS.get(desk(request))
    if job is None:
        return redirect("/auditor/")
    return render(request, "auditor/verify.html", _job_context(job))


async def verify_progress(request: Request) -> Response:
    """The progress fragment the verification page polls (htmx)."""
    await blocking(unlocked_client, request)
    job = RUNS.get(desk(request))
    if job is None:
        return redirect("/auditor/")
    return render(request, "auditor/_progress.html", _job_context(job))


def _job_context(job: Verification) -> dict[str, Any]:
    # The run's thread goes on while the page renders: the page shows one copy of the job, read
    # at one moment, so a run that fails meanwhile is not shown failed without its fault's label.
    # The copy reads ``finished`` before ``failure`` and ``result``, which _run sets first.
    seen = replace(job)
    return {"job": seen, "fault": _(FAULTS[seen.failure.fault]) if seen.failure else ""}


def _settings(profile: Profile) -> dict[str, Any]:
    return profile.read_json(profile.path / SETTINGS_FILE) or {}


def default_folder(profile: Profile) -> str:
    """Where exports go unless the auditor chose another folder."""
    return str(_settings(profile).get("export_folder") or profile.path / "exports")


async def export_page(request: Request) -> Response:
    """The export form: the folder to write into."""
    await blocking(unlocked_client, request)
    profile = desk(request).profile
    return render(request, "auditor/export.html",
                  {"errors": {}, "values": {"folder": default_folder(profile)}})


def _export(client: Client, profile: Profile, folder: Path) -> tuple[Path, int, int]:
    verifier = pinned_key(profile)
    state = load_state(profile)
    name = datetime.now(UTC).strftime("cadena-ledger-%Y%m%dT%H%M%SZ.jsonl")
    with ExportWriter(folder / name) as writer:
        result = audit_ledger(client.ledger, verifier, state, full=True, sink=writer,
                              on_checkpoint=lambda note, cp, listed: writer.header(
                                  note, cp, verifier, listed))
        path = writer.commit(replace=False)  # never over a file already in the folder
    _keep(profile, result.state)  # a full verification too
    return path, result.checkpoint.size, writer.count


async def export(request: Request) -> Response:
    """Verify the whole ledger and write it, with its checkpoint, into the chosen folder."""
    form = await read_form(request)
    client = await blocking(unlocked_client, request)
    profile = desk(request).profile
    text = form.get("folder")
    folder = Path(text).expanduser()
    if not text or not folder.is_absolute() or not folder.is_dir():
        return render(request, "auditor/export.html", {
            "errors": {"folder": _("Enter the full path of a folder that exists on this "
                                   "computer.")}, "values": {"folder": text}}, status=400)
    try:
        path, size, count = await blocking(_export, client, profile, folder)
    except AuditFailure as exc:
        return render(request, "auditor/verify.html", _job_context(Verification(
            full=True, finished=True, failure=exc)), status=422)
    settings = _settings(profile)
    settings["export_folder"] = str(folder)
    profile.write_json(profile.path / SETTINGS_FILE, settings)
    flash(request, _("The ledger was verified and exported: %(count)s entries up to "
                     "checkpoint %(size)s, in %(path)s.", count=count, size=size, path=str(path)))
    return redirect("/auditor/")


section = Section(key="auditor", title=N_("Audit"), roles=frozenset({AUDITOR}),
                  routes=[Route("/", index, methods=["GET"]),
                          Route("/verify", verify_start, methods=["POST"]),
                          Route("/verify", verify_page, methods=["GET"]),
                          Route("/verify/progress", verify_progress, methods=["GET"]),
                          Route("/export", export_page, methods=["GET"]),
                          Route("/export", export, methods=["POST"])])
