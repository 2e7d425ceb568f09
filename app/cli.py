"""``cadena-server``: serve, migrate, bootstrap and operate a Cadena server."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from app.settings import Settings
    from ledger.note import NoteVerifier

cli = typer.Typer(help="Cadena server: the secure case-information exchange.", no_args_is_help=True)


@cli.command()
def migrate() -> None:
    """Create the data directory and apply every database migration."""
    from app.migrate import upgrade_to_head
    from app.settings import get_settings

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    upgrade_to_head(settings.resolved_database_url())
    typer.echo("database is at the newest migration")


# -- ledger ------------------------------------------------------------------

ledger_cli = typer.Typer(help="Verify and checkpoint the audit ledger.", no_args_is_help=True)
cli.add_typer(ledger_cli, name="ledger")


def _ledger_engine(settings: Settings) -> Engine:
    from sqlalchemy.pool import NullPool

    from app.db import make_engine

    url = settings.resolved_database_url()
    if url.startswith("sqlite"):
        return make_engine(url, poolclass=NullPool)
    # One snapshot for the whole verification while API processes keep appending.
    return make_engine(url, poolclass=NullPool, isolation_level="REPEATABLE READ")


def _ledger_verifier(settings: Settings, key: str | None) -> NoteVerifier:
    from app.ledger_key import LedgerKeyError, load_note_verifier
    from ledger.errors import NoteFormatError
    from ledger.note import NoteVerifier

    try:
        if key is not None:
            return NoteVerifier.from_string(key)
        return load_note_verifier(settings.resolved_ledger_key_path(), settings.ledger_origin)
    except (LedgerKeyError, NoteFormatError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc


@ledger_cli.command("verify")
def ledger_verify(
    key: str | None = typer.Option(
        None, "--key", help="Note verifier string; default: derived from the ledger key file"
    ),
) -> None:
    """Verify every entry, node and checkpoint in the database; exit 1 on any fault."""
    from app.db import make_session_factory, transaction
    from app.models.ledger import LEDGER_TABLES
    from app.settings import get_settings
    from ledger.sqlstore import SqlStorage
    from ledger.verifier import verify_ledger

    settings = get_settings()
    verifier = _ledger_verifier(settings, key)
    engine = _ledger_engine(settings)
    try:
        with transaction(make_session_factory(engine)) as session:
            report = verify_ledger(SqlStorage(session, LEDGER_TABLES), verifier)
    finally:
        engine.dispose()
    typer.echo(f"entries:     {report.size}")
    typer.echo(f"checkpoints: {report.checkpoints}")
    if report.ok:
        typer.echo("ok: every entry, node and checkpoint verifies")
        return
    fault = report.fault.name if report.fault is not None else "UNKNOWN"
    typer.echo(f"FAILED at index {report.first_bad_index}: {fault}: {report.detail}")
    raise typer.Exit(code=1)


@ledger_cli.command("checkpoint")
def ledger_checkpoint() -> None:
    """Sign a checkpoint of the current tree now, if it grew since the latest one."""
    from app.db import make_session_factory, transaction
    from app.ledger_key import LedgerKeyError, load_note_signer
    from app.models.ledger import LEDGER_TABLES
    from app.settings import get_settings
    from ledger.log import Ledger
    from ledger.sqlstore import SqlStorage

    settings = get_settings()
    try:
        signer = load_note_signer(settings.resolved_ledger_key_path(), settings.ledger_origin)
    except LedgerKeyError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    engine = _ledger_engine(settings)
    try:
        with transaction(make_session_factory(engine)) as session:
            stored = Ledger(SqlStorage(session, LEDGER_TABLES)).checkpoint(
                signer, settings.ledger_origin
            )
    finally:
        engine.dispose()
    if stored is None:
        typer.echo("no new entries since the latest checkpoint")
        return
    typer.echo(stored.note, nl=False)


def main() -> None:
    """Entry point of ``cadena-server``."""
    cli()
