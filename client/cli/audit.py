"""Auditors' commands: ``audit verify`` (online or ``--file``) and ``audit export``.

The ledger key is pinned in the profile. The first online run without
``--key`` trusts the key the server announces and says so (trust on first
use); every later run verifies checkpoints with the pinned key only. Giving
``--key`` pins that key instead (and says so if it replaces another).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from client.audit import AuditState, audit_ledger
from client.audit import Progress as ProgressFn
from client.cli.common import (
    Connection,
    JsonOpt,
    ProfileOpt,
    QuietOpt,
    connect,
    err,
    guarded,
    open_profile,
    out,
    pinned_verifier,
    print_json,
    report_error,
)
from client.errors import AuditFailure, ProfileError
from client.export import ExportWriter, verify_export
from client.ledger_api import MAX_PAGE
from client.profile import Profile
from ledger import Checkpoint, LedgerError, NoteVerifier

audit_app = typer.Typer(no_args_is_help=True,
                        help="Verify and export the audit ledger (auditors).")
KeyOpt = Annotated[str | None, typer.Option(
    "--key", help="The ledger's verifier key (origin+keyid+base64); pinned in the profile.")]


def register(app: typer.Typer) -> None:
    """Add the ``audit`` command group to ``app``."""
    app.add_typer(audit_app, name="audit")


def _parse_key(text: str) -> NoteVerifier:
    try:
        return NoteVerifier.from_string(text.strip())
    except LedgerError as exc:
        raise typer.BadParameter(f"not a ledger verifier key: {exc}", param_hint="--key") from exc


def _trusted_key(conn: Connection, key: str | None) -> tuple[NoteVerifier, str]:
    """The key to verify with, pinning it if needed; and how it came to be trusted."""
    pinned = pinned_verifier(conn.config)
    if key is not None:
        verifier = _parse_key(key)
        how = "given with --key"
        if pinned is not None and str(pinned) != str(verifier):
            err().print(f"[yellow]warning:[/] the pinned ledger key {pinned} is replaced by "
                        f"{verifier}")
            how = "given with --key (replaces the pinned key)"
    elif pinned is not None:
        return pinned, "pinned"
    else:
        # Never learnt from the server: a server that chose the key could sign any view.
        raise ProfileError(
            f"profile {conn.profile.name!r} has no ledger key to verify with. Ask the centre "
            "for it (compare its fingerprint out of band), then run: cadena trust set "
            f"--profile {conn.profile.name} --ledger-key VKEY ..., or give it with --key VKEY")
    conn.config.ledger_key = str(verifier)
    conn.profile.save_config(conn.config)
    return verifier, how


def load_state(profile: Profile) -> AuditState | None:
    """The audit state the profile keeps from its last clean run, if any."""
    data = profile.read_json(profile.audit_path)
    return AuditState.from_json(data) if data is not None else None


@contextmanager
def _progress(quiet: bool, label: str) -> Iterator[ProgressFn]:
    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err(), transient=True, disable=quiet) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _report(rows: dict[str, Any], as_json: bool, ok: bool) -> None:
    if as_json:
        print_json({"ok": ok, **rows})
        return
    console = out()
    console.print("[bold green]ledger verified[/]" if ok else "[bold red]LEDGER FAILED[/]")
    shown = {f"{name.replace('_', ' ')}:": value for name, value in rows.items()
             if value is not None}
    width = max(map(len, shown), default=0)  # the longest label, then one space at least
    for label, value in shown.items():
        console.print(f"  {label:<{width}} {value}", highlight=False, markup=False)


def _failed(exc: AuditFailure, base: dict[str, Any], as_json: bool) -> typer.Exit:
    _report({**base, "fault": exc.fault.value, "first_bad_index": exc.index,
             "detail": exc.detail}, as_json, False)
    if as_json:
        report_error(exc)
    return typer.Exit(exc.exit_code)


def _checkpoint_rows(checkpoint: Checkpoint) -> dict[str, Any]:
    return {"origin": checkpoint.origin, "size": checkpoint.size,
            "root": _b64(checkpoint.root)}


def _online(ctx: typer.Context, profile: str | None, key: str | None, *, full: bool,
            reset: bool, quiet: bool, as_json: bool, page_size: int) -> None:
    with connect(ctx, profile) as conn:
        verifier, how = _trusted_key(conn, key)
        state = None if reset else load_state(conn.profile)
        base: dict[str, Any] = {"server": conn.config.server, "ledger_key": str(verifier),
                                "key_trust": how}
        try:
            with _progress(quiet, "ledger entries") as progress:
                result = audit_ledger(conn.client.ledger, verifier, state, full=full,
                                      page_size=page_size, progress=progress)
        except AuditFailure as exc:
            raise _failed(exc, base, as_json) from exc
        conn.profile.write_json(conn.profile.audit_path, result.state.to_json())
    continued = (f"from size {result.previous_size}, consistency proof verified"
                 if result.previous_size is not None else "first verification, from entry 0")
    _report({**base, **_checkpoint_rows(result.checkpoint), "continued": continued,
             "downloaded": result.downloaded, "from_index": result.start}, as_json, True)


def _offline(ctx: typer.Context, profile: str | None, key: str | None, path: Path, *,
             quiet: bool, as_json: bool) -> None:
    local = open_profile(ctx, profile)
    verifier = _parse_key(key) if key is not None else pinned_verifier(local.config())
    if verifier is None:
        raise typer.BadParameter("offline verification needs --key or a profile with a "
                                 "pinned ledger key", param_hint="--key")
    try:
        state = load_state(local)
    except ProfileError:
        state = None
    base: dict[str, Any] = {"file": str(path), "ledger_key": str(verifier)}
    try:
        with _progress(quiet, "exported entries") as progress:
            checkpoint, _ = verify_export(path, verifier, state, progress)
    except AuditFailure as exc:
        raise _failed(exc, base, as_json) from exc
    covered = state is not None and state.size <= checkpoint.size
    _report({**base, **_checkpoint_rows(checkpoint), "entries": checkpoint.size,
             "matches_profile": f"root at size {state.size} equals the last online audit"
             if covered and state else None}, as_json, True)


@audit_app.command("verify")
@guarded
def audit_verify(
    ctx: typer.Context, profile: ProfileOpt = None, key: KeyOpt = None,
    file: Annotated[Path | None, typer.Option(
        "--file", help="Verify an export offline instead of the server.")] = None,
    *, full: Annotated[bool, typer.Option(help="Download everything again, not only new "
                                            "entries (catches rewritten old entries).")] = False,
    reset: Annotated[bool, typer.Option(help="Forget the stored audit state first.")] = False,
    page_size: Annotated[int, typer.Option(min=1, max=MAX_PAGE, help="Entries per request.")
                         ] = MAX_PAGE,
    quiet: QuietOpt = False, as_json: JsonOpt = False,
) -> None:
    """Verify the ledger: signatures, entries, links, tree root, and no rollback or fork."""
    if file is not None:
        _offline(ctx, profile, key, file, quiet=quiet, as_json=as_json)
    else:
        _online(ctx, profile, key, full=full, reset=reset, quiet=quiet, as_json=as_json,
                page_size=page_size)


@audit_app.command("export")
@guarded
def audit_export(
    ctx: typer.Context, file: Annotated[Path, typer.Argument(help="Where to write (JSON lines).")],
    profile: ProfileOpt = None, key: KeyOpt = None, *, quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Download and verify the whole ledger, and write it with its checkpoint to FILE."""
    with connect(ctx, profile) as conn:
        verifier, how = _trusted_key(conn, key)
        state = load_state(conn.profile)
        base: dict[str, Any] = {"server": conn.config.server, "ledger_key": str(verifier),
                                "key_trust": how}
        with ExportWriter(file) as writer:
            try:
                with _progress(quiet, "ledger entries") as progress:
                    result = audit_ledger(
                        conn.client.ledger, verifier, state, full=True, progress=progress,
                        sink=writer, on_checkpoint=lambda note, cp, listed: writer.header(
                            note, cp, verifier, listed))
            except AuditFailure as exc:
                raise _failed(exc, base, as_json) from exc
            writer.commit()
    _report({**base, **_checkpoint_rows(result.checkpoint), "file": str(file),
             "entries": writer.count}, as_json, True)
