"""``cadena-witness``: set up and run a participating state's witness node.

The node's own command (:func:`main`); ``client/cli/main.py`` also mounts it as
``cadena witness`` (``app.add_typer(witness_app, name="witness")``).
Exit codes: 0 success, 1 fork evidence found (``evidence``), 2 bad set-up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperOption

from ledger import CosignatureSigner
from witness.config import (
    CONFIG_NAME,
    WitnessConfig,
    WitnessConfigError,
    create_key,
    load_config,
    parse_config,
    render_config,
)
from witness.server import create_app
from witness.store import WitnessStore, WitnessStoreError
from witness.witness import Witness


def _bare_flags_in_help() -> None:
    """Show flags bare in ``--help`` (``--json``), as click's plain help does.

    typer 0.29's rich help prints the type of every option, so a flag reads
    ``--json <bool>`` as if it took a value. The witness node has no other
    command line to share this with (it imports neither the client nor the service).
    """
    typed = TyperOption.display_type_rich

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag or self.count else typed(self, ctx)

    setattr(TyperOption, "display_type_rich", display_type_rich)  # noqa: B010 (mypy: no method assignment)


_bare_flags_in_help()

witness_app = typer.Typer(help="Run a witness that cosigns the ledger's checkpoints.",
                          no_args_is_help=True)

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="The witness.toml file")]


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=2)


def _config(path: Path) -> WitnessConfig:
    try:
        return load_config(path)
    except WitnessConfigError as exc:
        raise _fail(str(exc)) from exc


@witness_app.command()
def init(
    name: Annotated[str, typer.Option(help="Cosigner key name, e.g. witness.mx.example/w1")],
    log_key: Annotated[list[str], typer.Option(
        help="Verifier key of a log to follow (repeatable)")],
    directory: Annotated[Path, typer.Option("--dir", help="Where to write the files")] = Path(),
) -> None:
    """Generate the witness key (mode 0600) and witness.toml; print the verifier key."""
    config_path = directory / CONFIG_NAME
    if config_path.exists():
        raise _fail(f"{config_path} exists; not overwriting it")
    text = render_config(name, log_key)
    try:
        config = parse_config(text, directory)  # validate the name and keys before writing
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = create_key(config.key_file)
    except (WitnessConfigError, OSError) as exc:
        raise _fail(str(exc)) from exc
    config_path.write_text(text, encoding="utf-8")
    typer.echo(CosignatureSigner(name, key).verifier_key())


@witness_app.command()
def key(config: ConfigOption = Path(CONFIG_NAME)) -> None:
    """Print the witness's verifier key (give it to the centre's coordinators)."""
    try:
        typer.echo(_config(config).signer().verifier_key())
    except WitnessConfigError as exc:
        raise _fail(str(exc)) from exc


def build_witness(config: WitnessConfig) -> Witness:
    """The witness described by ``config`` (key read, state file opened)."""
    return Witness(config.signer(), config.logs, WitnessStore(config.state_file))


@witness_app.command()
def serve(
    config: ConfigOption = Path(CONFIG_NAME),
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 7380,
) -> None:
    """Serve POST /add-checkpoint (C2SP tlog-witness) until interrupted."""
    import uvicorn

    settings = _config(config)
    try:
        witness = build_witness(settings)
    except (WitnessConfigError, WitnessStoreError) as exc:
        raise _fail(str(exc)) from exc
    typer.echo(f"witness {witness.verifier_key()}", err=True)
    for origin in sorted(settings.logs):
        typer.echo(f"following {origin}", err=True)
    uvicorn.run(create_app(witness), host=host, port=port, log_level="info")


@witness_app.command()
def latest(config: ConfigOption = Path(CONFIG_NAME)) -> None:
    """Print the latest checkpoint cosigned for each log, as the log signed it.

    What a log's operator asks for when this witness says (HTTP 409) that it
    cosigned more than a restored ledger holds: the note carries the log's
    own signature, so it proves the size (docs/operations.md, "Restore").
    """
    settings = _config(config)
    try:
        store = WitnessStore(settings.state_file)
        found = [(origin, store.latest(origin)) for origin in sorted(settings.logs)]
    except WitnessStoreError as exc:
        raise _fail(str(exc)) from exc
    for origin, cosigned in found:
        if cosigned is None:
            typer.echo(f"== {origin}: nothing cosigned yet")
            continue
        typer.echo(f"== {origin}: size {cosigned.size}, cosigned at {cosigned.cosigned_at}")
        typer.echo(cosigned.note, nl=False)


@witness_app.command()
def evidence(config: ConfigOption = Path(CONFIG_NAME)) -> None:
    """Print every pair of conflicting log-signed checkpoints kept; exit 1 if any."""
    try:
        kept = WitnessStore(_config(config).state_file).evidence()
    except WitnessStoreError as exc:
        raise _fail(str(exc)) from exc
    if not kept:
        typer.echo("no fork evidence")
        return
    for item in kept:
        typer.echo(f"== {item.kind} of {item.origin} (seen at {item.seen_at}, "
                   f"old size {item.old_size}, {len(item.proof)} proof hashes)")
        typer.echo("-- cosigned:")
        typer.echo(item.cosigned_note, nl=False)
        typer.echo("-- conflicting:")
        typer.echo(item.conflicting_note, nl=False)
    raise typer.Exit(code=1)


def main() -> None:
    """Entry point of the ``cadena-witness`` script."""
    witness_app()
