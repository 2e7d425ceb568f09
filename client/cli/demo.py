"""``cadena demo``: a complete exchange between three states, narrated step by step.

Without ``--server`` it starts a temporary server (``cadena-server serve`` on a
free loopback port, SQLite in a temporary directory) and bootstraps it; with
``--server URL --coordinator PROFILE`` it uses a running, bootstrapped server
and that coordinator's profile. Every liaison gets a temporary profile
(unencrypted keys, ``CADENA_HOME`` in the temporary directory). Each step runs
the real ``cadena`` command, shown as you would type it, with its output.
Everything is deleted at the end unless ``--workdir`` is given.

The story itself is in :mod:`client.cli.demo_story`.
"""

from __future__ import annotations

import contextlib
import io
import json
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from client.cli.common import CliDeps, deps, guarded
from client.errors import ClientError, ProfileError, UsageError
from client.local_server import bootstrap, local_server
from client.profile import Profile
from client.sdk import Client
from client.session import Credentials
from client.transparency import DirectoryAPI, wait_until_proven
from client.trust import TrustRoots, load_trust


class DemoFailed(ClientError):
    """A step of the demo did not end as the story says it must."""


@dataclass
class Stage:
    """Runs ``cadena`` commands for the demo's people, printing them as a transcript."""

    home: Path
    files: Path
    console: Console
    http: Any = None
    tag: str = ""
    verifier_key: str | None = None
    trust: TrustRoots | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    def say(self, text: str) -> None:
        """Narrate."""
        self.console.print(text)

    def step(self, number: int, title: str, text: str) -> None:
        """Start a numbered step."""
        self.console.print()
        self.console.rule(f"[bold]{number}. {title}[/]", align="left")
        self.console.print(text)

    def who(self, name: str) -> str:
        """The liaison id of a demo person (suffixed on a shared server)."""
        return f"{name}{self.tag}"

    def trust_args(self) -> list[str]:
        """``cadena trust set`` options for the demo's trust roots."""
        if self.trust is None:
            raise UsageError("the demo needs the server's trust roots")
        witnesses = [a for w in self.trust.witnesses for a in ("--witness", str(w))]
        return ["--ledger-key", str(self.trust.ledger), *witnesses,
                "--quorum", str(self.trust.quorum), "--yes"]

    def wait_until_proven(self, url: str, liaison: str) -> None:
        """Wait (as the coordinator) until a signed checkpoint proves ``liaison``'s key."""
        coord = Profile("coord", self.home)
        config = coord.config()
        credentials = Credentials(str(config.liaison), lambda: coord.load_keys(lambda: ""))
        with Client(url, http=self.http, credentials=credentials) as client:
            wait_until_proven(DirectoryAPI(client.session), liaison,
                              witnessed=self.trust.quorum if self.trust else 0)

    def cadena(self, *args: str, code: int = 0, capture: bool = False) -> str:
        """Run ``cadena args...``; check its exit code; return its output if captured."""
        from client.cli import app

        shown = " ".join(a if " " not in a else repr(a) for a in args)
        # One line whatever the width (the terminal wraps it on screen): pasteable when piped.
        self.console.print(f"[dim]$ cadena {escape(shown)}[/]", soft_wrap=True)
        command = typer.main.get_command(app)
        buffer = io.StringIO()
        # A refusal the story expects is part of the story: its message goes to the
        # transcript on standard output (piped, it would land apart on standard error).
        shown_error = contextlib.redirect_stderr(sys.stdout) if code != 0 else None
        with contextlib.redirect_stdout(buffer) if capture else contextlib.nullcontext(), \
                shown_error or contextlib.nullcontext():
            try:
                result = command.main(list(args), prog_name="cadena", standalone_mode=False,
                                      obj=CliDeps(http=self.http, home=self.home))
            except typer.Exit as exc:
                result = exc.exit_code
        status = result if isinstance(result, int) else 0
        if status != code:
            raise DemoFailed(f"`cadena {shown}` exited with {status}, expected {code}")
        return buffer.getvalue()

    def as_json(self, *args: str) -> Any:
        """Run a command with ``--json`` and parse its output."""
        return json.loads(self.cadena(*args, "--json", capture=True))


def _new_profile(stage: Stage, name: str, server: str) -> dict[str, Any]:
    keys: dict[str, Any] = stage.as_json("keys", "generate", "--profile", name,
                                         "--no-passphrase")
    stage.cadena("profile", "set", "--profile", name, "--server", server,
                 "--liaison", stage.who(name))
    stage.cadena("trust", "set", "--profile", name, *stage.trust_args(), capture=True)
    return keys


@contextlib.contextmanager
def _temporary_server(stage: Stage, root: Path) -> Iterator[str]:
    stage.say("Starting a temporary Cadena server (SQLite in a temporary directory)...")
    keys = stage.as_json("keys", "generate", "--profile", "coord", "--no-passphrase")
    public = root / "coord-public.json"
    public.write_text(json.dumps(keys), encoding="utf-8")
    data = root / "server"
    stage.verifier_key = bootstrap(data, public, liaison="coord", name="Centre Coordinator")
    # A temporary server has no witness: the liaisons trust its operator alone (quorum 0).
    stage.trust = TrustRoots.parse(stage.verifier_key, [], 0)
    with local_server(data) as server:
        stage.say(f"server at {server.url}, data in {data}; bootstrapped with coordinator "
                  f"'coord', ledger key [bold]{stage.verifier_key}[/]")
        stage.cadena("profile", "set", "--profile", "coord", "--server", server.url,
                     "--liaison", "coord", "--ledger-key", stage.verifier_key)
        yield server.url


def _existing_server(stage: Stage, url: str, coordinator: str | None,
                     source_home: Path | None) -> str:
    if coordinator is None:
        raise UsageError("--server needs --coordinator PROFILE (a coordinator of that server)")
    source = Profile(coordinator, source_home)
    if not source.has_keys() or not source.config().liaison:
        raise ProfileError(f"profile {coordinator!r} has no keys or liaison id")
    target = Profile("coord", stage.home)
    target.ensure_dir()
    shutil.copy2(source.key_path, target.key_path)
    config = source.config()
    config.server = url.rstrip("/")
    target.save_config(config)
    stage.verifier_key = config.ledger_key
    stage.trust = load_trust(source)
    if stage.trust is None:
        raise ProfileError(f"profile {coordinator!r} has no trust roots: the demo's liaisons "
                           "take theirs from it (cadena trust set --profile "
                           f"{coordinator} ...)")
    stage.tag = "-" + secrets.token_hex(2)
    stage.say(f"Using the server at {url} as coordinator {config.liaison}; demo liaisons "
              f"are suffixed '{stage.tag}'.")
    return url.rstrip("/")


@guarded
def demo(
    ctx: typer.Context,
    server: Annotated[str | None, typer.Option(help="Use this running server instead of a "
                                                    "temporary one.")] = None,
    coordinator: Annotated[str | None, typer.Option(
        help="With --server: the profile of one of its coordinators.")] = None,
    workdir: Annotated[Path | None, typer.Option(
        help="Keep profiles, files and the ledger export here (default: deleted).")] = None,
) -> None:
    """Walk through a complete exchange between three states on a temporary server."""
    from client.cli.demo_story import tell

    console = Console(highlight=False)
    root = workdir.resolve() if workdir else Path(tempfile.mkdtemp(prefix="cadena-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    stage = Stage(root / "home", root / "files", console, http=deps(ctx).http)
    stage.files.mkdir(parents=True, exist_ok=True)
    try:
        if server is None:
            with _temporary_server(stage, root) as url:
                tell(stage, url)
        else:
            source_home = deps(ctx).home
            url = _existing_server(stage, server, coordinator, source_home)
            tell(stage, url)
    finally:
        if workdir is None:
            shutil.rmtree(root, ignore_errors=True)
