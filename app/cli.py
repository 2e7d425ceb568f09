"""``cadena-server``: serve, migrate, bootstrap and operate a Cadena server."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperOption

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from app.blobs import BlobStore
    from app.restore import Staged
    from app.settings import Settings
    from crypto import LiaisonKeys, LiaisonPublicKeys
    from ledger import LedgerReport, NoteVerifier

# The server's own processes import nothing from the directory they were started
# in: ``-P`` keeps ``python -m``/``-c`` from putting it first on ``sys.path``, and
# uvicorn's ``--app-dir`` (default ".") is where this ``app`` package is installed
# (tests/app/test_serve_cwd.py: an ``app`` or ``uvicorn.py`` planted there).
SAFE_PYTHON = (sys.executable, "-P")
APP_DIR = str(Path(__file__).resolve().parent.parent)

MIGRATE_CHILD = ("import sys; from app.migrate import upgrade_to_head; "
                 "upgrade_to_head(sys.argv[1])")

def _bare_flags_in_help() -> None:
    """Show flags bare in ``--help`` (``--json``), as click's plain help does.

    typer 0.29's rich help prints the type of every option, so a flag reads
    ``--json <bool>`` as if it took a value. The service shares no module with the
    client's command line (a liaison's machine has no server code).
    """
    typed = TyperOption.display_type_rich

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag or self.count else typed(self, ctx)

    setattr(TyperOption, "display_type_rich", display_type_rich)  # noqa: B010 (mypy: no method assignment)


_bare_flags_in_help()

cli = typer.Typer(help="Cadena server: the secure case-information exchange.", no_args_is_help=True)


@cli.callback()
def _private_files() -> None:
    """Cadena server: the secure case-information exchange."""
    from app.datadir import restrict_umask

    # Before any command runs: whatever it creates (the database, its WAL,
    # blobs, keys) is the server user's alone, and so is what serve's worker
    # processes create (the umask survives exec and spawn).
    restrict_umask()


def _data_dir(settings: Settings, *, create: bool = True) -> None:
    """Check (and with ``create``, make) the data directory; exit 2 if others may enter it."""
    from app.datadir import UnsafeDataDir, open_data_dir

    try:
        open_data_dir(settings.data_dir, create=create)
    except UnsafeDataDir as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc


@cli.command()
def migrate() -> None:
    """Create the data directory and apply every database migration."""
    from app.migrate import upgrade_to_head
    from app.settings import get_settings

    settings = get_settings()
    _data_dir(settings)
    upgrade_to_head(settings.resolved_database_url())
    typer.echo("database is at the newest migration")


@cli.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on"),
    port: int = typer.Option(8000, help="Port to listen on"),
    workers: int = typer.Option(1, min=1, help="Worker processes (more than 1 needs PostgreSQL)"),
    tls_cert: Path | None = typer.Option(
        None, help="Serve HTTPS with this PEM certificate chain (with --tls-key)"),
    tls_key: Path | None = typer.Option(
        None, help="The certificate's PEM private key: mode 0600, or refused"),
    metrics_port: int | None = typer.Option(
        None, min=1, max=65535, envvar="CADENA_METRICS_PORT", show_envvar=True,
        help="Serve Prometheus metrics on this port (CADENA_METRICS_HOST, default 127.0.0.1); "
             "off unless set"),
) -> None:
    """Create the data directory, apply the migrations and serve the API.

    With ``--tls-cert`` and ``--tls-key`` it speaks HTTPS itself; otherwise plain
    HTTP, for a reverse proxy that terminates TLS (docs/operations.md).
    """
    import os
    import subprocess
    import sys

    from app.logging import configure_logging
    from app.serving import port_refusal
    from app.settings import get_settings

    settings = get_settings()
    _data_dir(settings)
    _refuse_if_restoring(settings)
    _serving_origin(settings)
    url = settings.resolved_database_url()
    if workers > 1 and url.startswith("sqlite"):
        typer.echo("error: several workers need PostgreSQL (CADENA_DATABASE_URL)", err=True)
        raise typer.Exit(code=2)
    tls = _tls_files(tls_cert, tls_key)
    # Before migrating and before saying "serving on": uvicorn would only fail later.
    refusal = port_refusal(host, port)
    if refusal is None and metrics_port is not None:
        refusal = port_refusal(settings.metrics_host, metrics_port)
        os.environ["CADENA_METRICS_PORT"] = str(metrics_port)  # read by the serving processes
    if refusal is not None:
        typer.echo(f"error: {refusal}", err=True)
        raise typer.Exit(code=1)
    configure_logging(json=settings.log_json, level=settings.log_level)
    # Migrate in a child process: Alembic (about 11 MB) never enters the serving one.
    migrated = subprocess.run([*SAFE_PYTHON, "-c", MIGRATE_CHILD, url], check=False)  # noqa: S603
    if migrated.returncode != 0:
        typer.echo("error: the database migrations failed", err=True)
        raise typer.Exit(code=1)
    _refuse_if_behind(settings)
    scheme = "https" if tls else "http"
    typer.echo(f"Cadena serving on {scheme}://{host}:{port} (data in {settings.data_dir})",
               err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    # The server takes over this process (same pid, so signals reach it), free of the
    # command line's own modules (typer, rich: about 10 MB). Several workers get a socket
    # each (app/serving.py: uvicorn's shared one leaves a client's connections on one).
    from app.serving import balanced

    if workers > 1 and not balanced() and metrics_port is not None:
        typer.echo("error: --metrics-port with several workers needs Linux (SO_REUSEPORT)",
                   err=True)
        raise typer.Exit(code=2)
    if workers > 1 and balanced():
        serving_tls = ["--tls-cert", tls[0], "--tls-key", tls[1]] if tls else []
        os.execv(sys.executable, [*SAFE_PYTHON, "-m", "app.serving",  # noqa: S606
                                  "--host", host, "--port", str(port), "--workers", str(workers),
                                  *serving_tls])
    uvicorn_tls = ["--ssl-certfile", tls[0], "--ssl-keyfile", tls[1]] if tls else []
    os.execv(sys.executable, [*SAFE_PYTHON, "-m", "uvicorn", "app.worker:worker_app",  # noqa: S606
                              "--app-dir", APP_DIR, "--factory", "--host", host,
                              "--port", str(port), "--workers", str(workers),
                              "--log-level", "warning",
                              "--no-access-log", *uvicorn_tls])


def _behind_witnesses(database_url: str, extra_urls: list[str]) -> bool:
    """Ask the witnesses whether they cosigned more than this ledger holds; say what they said.

    True when the ledger is behind them (the refusal has been printed).
    """
    from sqlalchemy.pool import NullPool

    from app.ledger import make_engine, make_session_factory
    from app.witnesses.behind import check

    engine = make_engine(database_url, poolclass=NullPool)
    try:
        with make_session_factory(engine)() as session:
            report = check(session, extra_urls)
    finally:
        engine.dispose()
    for line in report.summary():
        typer.echo(line, err=True)
    if report.behind:
        typer.echo(f"error: {report.refusal()}", err=True)
        return True
    if report.answers and all(a.size is None for a in report.answers):
        typer.echo("warning: no witness answered: whether entries were lost since a backup "
                   "cannot be told now (checked again at the next start)", err=True)
    return False


def _refuse_if_behind(settings: Settings) -> None:
    """Exit 3 rather than serve a ledger smaller than its witnesses cosigned (ADR: backup).

    Asks the registered witnesses and those given to ``restore --witness``
    (remembered in the data directory).
    """
    from app.witnesses.behind import EXIT_BEHIND, remembered

    if not settings.resolved_ledger_key_path().exists():
        return
    if _behind_witnesses(settings.resolved_database_url(), remembered(settings.data_dir)):
        raise typer.Exit(code=EXIT_BEHIND)


def _refuse_if_restoring(settings: Settings) -> None:
    """Exit 2 while a restore into this data directory is unfinished (app/staging.py)."""
    from app.staging import MARKER

    if (settings.data_dir / MARKER).exists():
        typer.echo(f"error: a restore into {settings.data_dir} was interrupted: the database "
                   "may hold the archive while this directory holds the previous files. Run "
                   "`cadena-server restore --force ARCHIVE` again (it first puts the previous "
                   "database back); docs/operations.md, \"Restore\"", err=True)
        raise typer.Exit(code=2)


def _tls_files(cert: Path | None, key: Path | None) -> tuple[str, str] | None:
    """The certificate and key files to serve HTTPS with, checked (exit 2 if unfit)."""
    from app.tls import tls_refusal

    refusal = tls_refusal(cert, key)
    if refusal is not None:
        typer.echo(f"error: {refusal}", err=True)
        raise typer.Exit(code=2)
    if cert is None or key is None:
        return None
    return str(cert.resolve()), str(key.resolve())


def _serving_origin(settings: Settings) -> None:
    """Refuse an origin other than bootstrap's; say what a server not yet bootstrapped lacks."""
    from app.blob_db import blob_store_conflict

    conflict = settings.origin_conflict() or blob_store_conflict(settings)
    if conflict is not None:
        typer.echo(f"error: {conflict}", err=True)
        raise typer.Exit(code=2)
    if not settings.resolved_ledger_key_path().exists():
        # The README's first command serves a fresh checkout: the API answers, but with
        # no coordinator nobody can log in, and no checkpoint is signed.
        typer.echo("not bootstrapped yet: nobody can log in and no checkpoint is signed until "
                   "`cadena-server bootstrap --origin NAME ...` has run on this data directory "
                   "(docs/operations.md, \"First start\"); then restart serve", err=True)
        return
    typer.echo(f"ledger origin: {settings.ledger_origin}", err=True)


def _public_keys(path: Path | None, signing: str | None, encryption: str | None) -> tuple[str, str]:
    import json

    if path is not None:
        data = json.loads(path.read_text(encoding="utf-8"))
        signing, encryption = data.get("signing_public"), data.get("encryption_public")
    if not isinstance(signing, str) or not isinstance(encryption, str):
        typer.echo("error: give --public-keys FILE (from `cadena keys show --json`) or both "
                   "--signing-public and --encryption-public", err=True)
        raise typer.Exit(code=2)
    return signing, encryption


def _ledger_origin(given: str | None) -> str:
    """The origin bootstrap fixes: given explicitly, a valid key name, the server's own."""
    from nacl.signing import SigningKey

    from ledger import LedgerError, NoteSigner

    if given is None and sys.stdin.isatty():
        typer.echo("The ledger's origin names it in every checkpoint, witness cosignature and "
                   "custody certificate, and can never change.", err=True)
        given = typer.prompt("Ledger origin (e.g. fiscalia.example/cadena-ledger)", err=True)
    if given is None:
        typer.echo("error: choose the ledger's origin with --origin NAME (or "
                   "CADENA_LEDGER_ORIGIN), e.g. --origin fiscalia.example/cadena-ledger; "
                   "it is permanent: every checkpoint, witness cosignature and custody "
                   "certificate names it, and it can never change", err=True)
        raise typer.Exit(code=2)
    try:
        NoteSigner(given, SigningKey.generate())  # a throwaway key: checks the name alone
    except LedgerError as exc:
        typer.echo(f"error: the ledger origin {given!r} cannot be a checkpoint origin "
                   f"(C2SP signed-note key name): {exc}", err=True)
        raise typer.Exit(code=2) from exc
    serving = os.environ.get("CADENA_LEDGER_ORIGIN")
    if serving is not None and serving != given:
        typer.echo(f"error: --origin {given} differs from CADENA_LEDGER_ORIGIN={serving}, "
                   "with which the server signs; give one origin", err=True)
        raise typer.Exit(code=2)
    return given


@cli.command()
def bootstrap(
    state: str = typer.Option(..., help="ISO 3166-1 alpha-2 code of the coordinator's state"),
    state_name: str = typer.Option(..., help="Name of that state"),
    joining_note: str = typer.Option(..., help="Reference of the note by which it joined"),
    liaison: str = typer.Option(..., help="Id of the first coordinator"),
    *, name: str = typer.Option(..., help="Name of the first coordinator"),
    public_keys: Path | None = typer.Option(None, help="JSON from `cadena keys show --json`"),
    signing_public: str | None = typer.Option(None, help="Ed25519 public key, base64"),
    encryption_public: str | None = typer.Option(None, help="X25519 public key, base64"),
    origin: str | None = typer.Option(
        None, envvar="CADENA_LEDGER_ORIGIN", show_envvar=True,
        help="The ledger's origin, e.g. fiscalia.example/cadena-ledger: permanent (every "
             "checkpoint, cosignature and certificate names it)"),
) -> None:
    """Create the ledger key and the first coordinator from their public keys (once).

    The ledger's origin is chosen here, explicitly, and never changes afterwards.
    """
    from app.bootstrap import Coordinator
    from app.bootstrap import bootstrap as run_bootstrap
    from app.errors import CadenaError
    from app.ledger import make_engine, make_session_factory, transaction
    from app.migrate import upgrade_to_head
    from app.settings import get_settings
    from crypto import CryptoError, LiaisonPublicKeys, b64decode, check_public_keys

    settings = get_settings()
    chosen = _ledger_origin(origin)
    _data_dir(settings)
    url = settings.resolved_database_url()
    sign_b64, box_b64 = _public_keys(public_keys, signing_public, encryption_public)
    try:
        keys = check_public_keys(LiaisonPublicKeys(
            signing=b64decode(sign_b64, "signing_public", 32),
            encryption=b64decode(box_b64, "encryption_public", 32)))
    except CryptoError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    upgrade_to_head(url)
    first = Coordinator(liaison_id=liaison, name=name, state_code=state.upper(),
                        state_name=state_name, joining_note=joining_note, keys=keys)
    engine = make_engine(url)
    try:
        with transaction(make_session_factory(engine)) as session:
            verifier = run_bootstrap(session, settings.resolved_ledger_key_path(), chosen,
                                     first)
    except CadenaError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(code=1) from exc
    finally:
        engine.dispose()
    typer.echo(f"ledger origin: {chosen} (permanent: every checkpoint, witness cosignature "
               "and custody certificate names it; a new origin means a new ledger)")
    typer.echo(f"recorded in {settings.resolved_ledger_origin_path()}: serve and every "
               "cadena-server command read it there (if set, CADENA_LEDGER_ORIGIN must be "
               f"{chosen}); restart a server that is already running")
    typer.echo(f"coordinator {liaison} enrolled; key fingerprint {keys.fingerprint}")
    typer.echo("ledger verifier key (publish it to auditors and witnesses):")
    typer.echo(verifier)


# -- ledger ------------------------------------------------------------------

ledger_cli = typer.Typer(help="Verify and checkpoint the audit ledger.", no_args_is_help=True)
cli.add_typer(ledger_cli, name="ledger")


def _ledger_engine(url: str) -> Engine:
    from sqlalchemy.pool import NullPool

    from app.ledger import make_engine

    if url.startswith("sqlite"):
        return make_engine(url, poolclass=NullPool)
    # One snapshot for the whole verification while API processes keep appending.
    return make_engine(url, poolclass=NullPool, isolation_level="REPEATABLE READ")


def _ledger_verifier(settings: Settings, key: str | None) -> NoteVerifier:
    from app.ledger import LedgerKeyError, load_note_verifier
    from ledger import NoteFormatError, NoteVerifier

    try:
        if key is not None:
            return NoteVerifier.from_string(key)
        _checked_origin(settings)
        return load_note_verifier(settings.resolved_ledger_key_path(), settings.ledger_origin)
    except (LedgerKeyError, NoteFormatError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc


def _checked_origin(settings: Settings) -> None:
    """Exit 2 unless the origin is bootstrap's (recorded, or named when not recorded)."""
    conflict = settings.origin_conflict()
    if conflict is None and not settings.ledger_origin:
        conflict = "not bootstrapped: no ledger origin recorded and CADENA_LEDGER_ORIGIN unset"
    if conflict is not None:
        typer.echo(f"error: {conflict}", err=True)
        raise typer.Exit(code=2)


def _default_jobs() -> int:
    # The CPUs this process may run on; more workers than that only contend.
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cpus or 1, 8))


@ledger_cli.command("verify")
def ledger_verify(
    key: str | None = typer.Option(
        None, "--key", help="Note verifier string; default: derived from the ledger key file"
    ),
    jobs: int = typer.Option(
        _default_jobs(), "--jobs", "-j", min=1,
        help="Worker processes for ledgers of 65,536 entries or more (default: CPUs, at most 8)",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON object"),
) -> None:
    """Verify every entry, node and checkpoint in the database; exit 1 on any fault."""
    from app.settings import get_settings

    settings = get_settings()
    _data_dir(settings, create=False)
    verifier = _ledger_verifier(settings, key)
    report = _verified(settings.resolved_database_url(), verifier, jobs)
    _print_report(report, as_json)
    if not report.ok:
        raise typer.Exit(code=1)


def _verified(url: str, verifier: NoteVerifier, jobs: int) -> LedgerReport:
    """The verifier's report on the ledger in the database at ``url``."""
    from app.ledger import LedgerReaderOpener, make_session_factory, storage_for, transaction
    from ledger import verify_ledger

    engine = _ledger_engine(url)
    try:
        with transaction(make_session_factory(engine)) as session:
            return verify_ledger(storage_for(session), verifier,
                                 opener=LedgerReaderOpener(url), workers=jobs)
    finally:
        engine.dispose()


def _print_report(report: LedgerReport, as_json: bool) -> None:
    """The verifier's report, as text or JSON, with the fault names of docs/ledger-formats.md."""
    fault = report.fault.value if report.fault is not None else None
    if as_json:
        typer.echo(json.dumps({"ok": report.ok, "entries": report.size,
                               "checkpoints": report.checkpoints, "fault": fault,
                               "first_bad_index": report.first_bad_index,
                               "detail": report.detail}))
        return
    typer.echo(f"entries:     {report.size}")
    typer.echo(f"checkpoints: {report.checkpoints}")
    if report.ok:
        typer.echo("ok: every entry, node and checkpoint verifies")
    else:
        typer.echo(f"FAILED at index {report.first_bad_index}: {fault}: {report.detail}")


@ledger_cli.command("checkpoint")
def ledger_checkpoint() -> None:
    """Sign a checkpoint of the current tree now, if it grew since the latest one."""
    from app.ledger import (
        LedgerKeyError,
        load_note_signer,
        make_session_factory,
        sign_once,
    )
    from app.settings import get_settings

    settings = get_settings()
    _data_dir(settings, create=False)
    _checked_origin(settings)
    try:
        signer = load_note_signer(settings.resolved_ledger_key_path(), settings.ledger_origin)
    except LedgerKeyError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    engine = _ledger_engine(settings.resolved_database_url())
    try:
        # The checkpointer's own path: the checkpoint carries the key log.
        stored = sign_once(make_session_factory(engine), signer, settings.ledger_origin)
    finally:
        engine.dispose()
    if stored is None:
        typer.echo("no new entries since the latest checkpoint")
        return
    typer.echo(stored.note, nl=False)


# -- blobs -------------------------------------------------------------------

blobs_cli = typer.Typer(help="Look after the blob store.", no_args_is_help=True)
cli.add_typer(blobs_cli, name="blobs")


@blobs_cli.command("prune")
def blobs_prune(
    older_than: float = typer.Option(
        24.0, "--older-than", min=1.0,
        help="Grace period in hours: only blobs stored (or uploaded again) longer ago go"),
    dry_run: bool = typer.Option(False, "--dry-run", help="Report what would go; change nothing"),
) -> None:
    """Delete ciphertext blobs that no packet references (each logged as blob.prune)."""
    from datetime import timedelta

    from app.blob_db import blob_store_conflict, close_blob_store, make_blob_store
    from app.blob_prune import prune
    from app.ledger import make_engine, make_session_factory
    from app.settings import get_settings

    settings = get_settings()
    _data_dir(settings, create=False)
    conflict = blob_store_conflict(settings)
    if conflict is not None:
        typer.echo(f"error: {conflict}", err=True)
        raise typer.Exit(code=2)
    engine = make_engine(settings.resolved_database_url())
    store = make_blob_store(settings)
    try:
        report = prune(make_session_factory(engine), store, timedelta(hours=older_than),
                       dry_run=dry_run)
    finally:
        close_blob_store(store)
        engine.dispose()
    verb = "would prune" if dry_run else "pruned"
    typer.echo(f"examined {report.examined} blobs: {report.referenced} referenced by packets, "
               f"{report.recent} within the grace period")
    typer.echo(f"{verb} {len(report.pruned)} blobs ({report.bytes_freed} bytes); "
               f"{report.partial_uploads} stale partial uploads; "
               f"{report.restored} moved back after an interrupted run")


# -- backup and restore ------------------------------------------------------


def _backup_blobs(settings: Settings) -> BlobStore:
    """The blob directory a backup copies from, or a restore writes to.

    With ``CADENA_BLOB_STORE=database`` the blobs are rows of the database,
    which the database snapshot already holds: the store says so and no blob
    file is copied or written.
    """
    from app.blobs import BlobStore

    return BlobStore(settings.data_dir / "blobs",
                     in_database=settings.blob_store == "database")


def _backup_keys(settings: Settings) -> dict[str, Path]:
    from app.backup import key_files

    return key_files(settings.data_dir, settings.resolved_ledger_key_path(),
                     settings.resolved_seal_key_path())


@cli.command()
def backup(
    out: Path = typer.Option(..., "--out", help="The archive to write (mode 0600; never "
                             "overwritten)"),
    recipient: Path | None = typer.Option(
        None, "--recipient",
        help="Encrypt to this operator's public keys (JSON from `cadena keys show --json`)"),
) -> None:
    """Archive the database, blobs and keys consistently, while the server runs."""
    from app.backup import BackupError, Sources
    from app.backup import backup as run_backup
    from app.settings import get_settings

    settings = get_settings()
    _data_dir(settings, create=False)
    operator = None
    if recipient is not None:
        operator = _operator_public(recipient)
    sources = Sources(settings.resolved_database_url(), _backup_blobs(settings),
                      _backup_keys(settings))
    try:
        report = run_backup(sources, out, operator)
    except BackupError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    how = (f"encrypted to operator key {operator.key_id}" if operator is not None
           else "NOT encrypted: keep it as secret as the data directory (mode 0600)")
    typer.echo(f"backup written to {report.path} ({how})")
    typer.echo(f"ledger: {report.ledger.size} entries, root {report.ledger.root}, "
               f"latest checkpoint at size {report.ledger.checkpoint_size}")
    typer.echo(f"blobs: {report.blobs}; keys: {', '.join(report.keys) or 'none'}")


def _operator_public(path: Path) -> LiaisonPublicKeys:
    from crypto import CryptoError, LiaisonPublicKeys, b64decode, check_public_keys

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return check_public_keys(LiaisonPublicKeys(
            signing=b64decode(data["signing_public"], "signing_public", 32),
            encryption=b64decode(data["encryption_public"], "encryption_public", 32)))
    except (OSError, ValueError, KeyError, TypeError, CryptoError) as exc:
        typer.echo(f"error: {path} holds no operator public keys (`cadena keys show --json`): "
                   f"{exc}", err=True)
        raise typer.Exit(code=2) from exc


def _operator_identity(path: Path) -> LiaisonKeys:
    from crypto import CryptoError, load_keys

    passphrase = os.environ.get("CADENA_PASSPHRASE")
    if passphrase is None and sys.stdin.isatty():
        passphrase = typer.prompt("Passphrase of the operator key", hide_input=True, err=True)
    try:
        return load_keys(path.read_bytes(), passphrase)
    except (OSError, CryptoError) as exc:
        typer.echo(f"error: cannot open the operator key {path}: {exc}", err=True)
        raise typer.Exit(code=2) from exc


@cli.command()
def restore(
    archive: Path = typer.Argument(..., help="An archive from `cadena-server backup`"),
    identity: Path | None = typer.Option(
        None, "--identity", help="The operator's key file, for an encrypted archive "
        "(passphrase from CADENA_PASSPHRASE or a prompt)"),
    force: bool = typer.Option(False, "--force",
                               help="Replace a data directory or database that is not empty"),
    witness: list[str] = typer.Option(
        [], "--witness", help="Also ask this witness URL (one registered after the backup); "
        "remembered in the data directory, and asked by serve at every start"),
    ledger_key: str | None = typer.Option(
        None, "--ledger-key", help="The ledger verifier key auditors pin: the restored key "
        "must be it, and every checkpoint must verify under it"),
) -> None:
    """Restore an archive into an empty data directory and database, all at once or not at all.

    The archive is checked whole, the new data directory built beside the old
    one and checked there (migrations, the ledger against the manifest,
    ``ledger verify``, the witnesses: exit 3 if behind), and only then put in
    place. Any failure before leaves the data directory and database as they were.
    """
    from app.backup import BackupError
    from app.restore import BehindError, Targets
    from app.restore import restore as run_restore
    from app.settings import get_settings
    from app.witnesses.behind import EXIT_BEHIND, witness_url_problem

    settings = get_settings()
    _data_dir(settings)
    for url in witness:
        problem = witness_url_problem(url)
        if problem is not None:
            typer.echo(f"error: --witness {problem}", err=True)
            raise typer.Exit(code=2)
    operator = _operator_identity(identity) if identity is not None else None
    targets = Targets(settings.data_dir, settings.resolved_database_url(),
                      _backup_blobs(settings), _backup_keys(settings))
    behind: list[bool] = []

    def checked(staged: Staged) -> None:
        _check_staged(settings, staged, ledger_key)
        from app.witnesses.behind import remember

        remember(staged.data_dir, witness)
        if _behind_witnesses(staged.database_url, list(witness)):
            if staged.replacing:
                raise BehindError("the archive is behind its witnesses: the server it would "
                                  "replace is kept")
            behind.append(True)

    try:
        restored = run_restore(archive, targets, operator, force=force, check=checked)
    except BackupError as exc:
        typer.echo(f"error: {exc}", err=True)
        typer.echo("nothing was changed: the data directory and the database are as they were",
                   err=True)
        raise typer.Exit(code=EXIT_BEHIND if isinstance(exc, BehindError) else 1) from exc
    typer.echo(f"restored {archive} into {settings.data_dir}")
    if restored.kept is not None:
        typer.echo(f"the replaced data directory is kept at {restored.kept}: delete it once "
                   "the restored server serves")
    if behind:
        raise typer.Exit(code=EXIT_BEHIND)
    typer.echo("ok: the restored ledger is not behind any witness that answered; serve may "
               "start")


def _check_staged(settings: Settings, staged: Staged, pinned: str | None) -> None:
    """Migrate the staged database and check its ledger; :class:`BackupError` if it fails."""
    from app.backup import BackupError
    from app.migrate import upgrade_to_head
    from app.restore import restored_ledger

    try:
        upgrade_to_head(staged.database_url)
        state = restored_ledger(staged.database_url)
    except Exception as exc:  # noqa: BLE001 (any fault of the archive's database is the archive's)
        raise BackupError(f"the archive's database cannot be read or migrated: "
                          f"{type(exc).__name__}: {str(exc)[:300]}") from exc
    want = staged.manifest["ledger"]
    if (state.size, state.root) != (want["size"], want["root"]):
        raise BackupError(f"the restored ledger ({state.size} entries, root {state.root}) is "
                          f"not the one the manifest names ({want['size']}, {want['root']})")
    typer.echo(f"archive checked: ledger of {state.size} entries, root {state.root}")
    verifier = _staged_verifier(settings, staged, pinned)
    report = _verified(staged.database_url, verifier, 1)
    _print_report(report, as_json=False)
    if not report.ok:
        raise BackupError(f"the restored ledger does not verify: {report.detail}")


def _staged_verifier(settings: Settings, staged: Staged, pinned: str | None) -> NoteVerifier:
    """The staged ledger key's verifier; with ``pinned``, that key, which it must be."""
    from app.backup import LEDGER_KEY, LEDGER_ORIGIN, BackupError
    from app.ledger import LedgerKeyError, load_note_verifier
    from ledger import NoteFormatError, NoteVerifier

    key = staged.keys.get(LEDGER_KEY)
    if key is None:
        raise BackupError("the archive holds no ledger key")
    origin_file = staged.keys.get(LEDGER_ORIGIN)
    origin = (origin_file.read_text(encoding="utf-8").strip() if origin_file is not None
              else settings.ledger_origin)
    try:
        restored = load_note_verifier(key, origin)
        if pinned is None:
            return restored
        wanted = NoteVerifier.from_string(pinned.strip())
    except (LedgerKeyError, NoteFormatError) as exc:
        raise BackupError(f"the ledger key cannot be checked: {exc}") from exc
    if str(restored) != str(wanted):
        raise BackupError(f"the restored ledger key is {restored}, not the pinned {pinned}: "
                          "this archive is not this ledger's (or was forged)")
    typer.echo("the restored ledger key is the pinned one")
    return wanted


def main() -> None:
    """Entry point of ``cadena-server``."""
    cli()
