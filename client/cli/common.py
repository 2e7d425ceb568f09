"""What every ``cadena`` command shares: options, dependencies, errors, output.

Dependencies are injected through the click context object: tests call
``CliRunner().invoke(app, args, obj=CliDeps(http=test_client))`` and every
command then talks to that ``httpx.Client`` (a Starlette ``TestClient`` runs
the server in-process). Without an object, commands make their own client.

Exit codes: 0 ok, 1 verification failure, 2 usage (bad options, profile or
keys), 3 refused by the server (4xx), 4 server or network error.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import httpx
import typer
from rich.console import Console
from rich.table import Table

from client.agent import AgentKeys, find_agent
from client.contacts import ContactBook, PinnedKey
from client.errors import ClientError, ProblemError, ProfileError, ProtocolError
from client.keychain import KeyNotProven
from client.keylog import ProfileScans
from client.models import Token
from client.profile import Profile, ProfileConfig, profile_name
from client.sdk import Client
from client.session import Credentials, utc_now
from client.transparency import (
    DirectoryAPI,
    KeyTransparency,
    NoTrustRoots,
    ProfileCheckpoints,
    self_check,
)
from client.trust import load_trust
from crypto import CryptoError, KeyHolder, LiaisonPublicKeys
from ledger import LedgerError, NoteVerifier

P = ParamSpec("P")
R = TypeVar("R")

ProfileOpt = Annotated[str | None, typer.Option(
    "--profile", "-p", envvar="CADENA_PROFILE", show_envvar=True,
    help="Profile to use (a directory under CADENA_HOME).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]


@dataclass
class CliDeps:
    """What commands get from outside: an HTTP client, a clock, the profiles' home."""

    http: httpx.Client | None = None
    clock: Callable[[], datetime] = utc_now
    home: Path | None = None


def deps(ctx: typer.Context) -> CliDeps:
    """The injected dependencies, or defaults."""
    obj = ctx.find_root().obj
    return obj if isinstance(obj, CliDeps) else CliDeps()


PIPED_WIDTH = 4096
"""Width of standard output when it is not a terminal and ``COLUMNS`` is unset."""


def out() -> Console:
    """A console on standard output (created per command, so test runners capture it).

    Piped, lines are not cut to fit 80 columns: a table keeps its natural
    width, so a script (or ``grep``) sees each row on one line.
    """
    piped = not sys.stdout.isatty() and not os.environ.get("COLUMNS")
    return Console(highlight=False, soft_wrap=True, width=PIPED_WIDTH if piped else None)


def err() -> Console:
    """A console on standard error, for messages that must not pollute ``--json`` output."""
    return Console(stderr=True, highlight=False, soft_wrap=True)


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON on standard output."""
    typer.echo(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False))


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *,
                whole: Collection[str] = ()) -> None:
    """Print a table (``-`` for empty cells).

    Columns named in ``whole`` (ids a reader pastes into the next command) are
    never wrapped, shortened or given an ellipsis; the others shrink and wrap
    to fit. Narrower than the whole columns need, the table is printed wider
    than the terminal rather than cut.
    """
    cells = [["-" if cell is None else str(cell) for cell in row] for row in rows]
    table = Table(title=title, title_justify="left")
    needed = 1  # the left border; then each column's padding and right border
    for index, column in enumerate(columns):
        if column in whole:
            table.add_column(column, no_wrap=True, overflow="fold")  # fold: no ellipsis, ever
            needed += max([len(column), *(len(row[index]) for row in cells)]) + 3
        else:
            table.add_column(column)
            needed += 4
    for row in cells:
        table.add_row(*row)
    console = out()
    if console.width < needed:  # print() never goes wider than its console
        console = Console(highlight=False, soft_wrap=True, width=needed)
    console.print(table)


def when(moment: datetime | None) -> str:
    """A time for people: ``2026-11-22 06:08:51Z``, or ``-``."""
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%SZ")


def report_error(exc: ClientError) -> None:
    """Explain ``exc`` on standard error."""
    kind = {1: "verification failed", 2: "error", 3: "refused", 4: "error"}[exc.exit_code]
    message = str(exc)
    if isinstance(exc, ProblemError) and exc.ledger_index is not None:
        message += f" (recorded in the ledger at index {exc.ledger_index})"
    err().print(f"[bold red]{kind}:[/] {message}", markup=True)


def guarded(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn :class:`ClientError` into a message and the exit code it maps to."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except ClientError as exc:
            report_error(exc)
            raise typer.Exit(exc.exit_code) from exc

    return wrapper


def passphrase_source(confirm: bool = False) -> Callable[[], str]:
    """``CADENA_PASSPHRASE`` if set (for scripts), else a hidden prompt."""

    def get() -> str:
        env = os.environ.get("CADENA_PASSPHRASE")
        if env:
            return env
        try:
            # Piped, nothing is echoed anyway, and getpass would only warn that it cannot
            # turn echo off.
            value = typer.prompt("Passphrase", hide_input=sys.stdin.isatty(),
                                 confirmation_prompt=confirm, err=True)
        except typer.Abort as exc:
            if sys.stdin.isatty():
                raise  # Ctrl-C or Ctrl-D at the prompt: the person chose to stop
            # Standard input ran out without a passphrase: a set-up to fix, not a failure.
            typer.echo("", err=True)  # end the prompt's line
            raise ProfileError(
                "no passphrase: standard input is not a terminal; set CADENA_PASSPHRASE, "
                "run the command in a terminal, or (keys generate, keys rotate) give "
                "--no-passphrase to store the key unencrypted") from exc
        if not value:
            raise ProfileError("an empty passphrase is not allowed")
        return str(value)

    return get


def open_profile(ctx: typer.Context, name: str | None) -> Profile:
    """The profile named on the command line, by ``CADENA_PROFILE``, or ``default``."""
    return Profile(profile_name(name), deps(ctx).home)


def pinned_verifier(config: ProfileConfig) -> NoteVerifier | None:
    """The ledger key pinned in the profile, if any."""
    if not config.ledger_key:
        return None
    try:
        return NoteVerifier.from_string(config.ledger_key)
    except LedgerError as exc:
        raise ProfileError(f"the pinned ledger key is not a verifier key: {exc}") from exc


@dataclass
class Connection:
    """A client bound to a profile, for the length of one command."""

    client: Client
    profile: Profile
    config: ProfileConfig


def warn(message: str) -> None:
    """A warning on standard error."""
    err().print(f"[bold yellow]warning:[/] {message}")


def _transparency(client: Client, profile: Profile, pins: ContactBook) -> KeyTransparency | None:
    # With trust roots set, every key is checked against the witnessed ledger
    # (client.transparency) before the pins see it; without, no contact's key
    # is used at all (never trusted on first use).
    roots = load_trust(profile)
    if roots is None:
        client.liaisons.pins = NoTrustRoots(profile.name)
        return None
    kt = KeyTransparency(DirectoryAPI(client.session), roots, ProfileCheckpoints(profile),
                         pins=pins, warn=warn)
    client.liaisons.pins = kt
    return kt


def served_keys(client: Client, liaison_id: str) -> list[LiaisonPublicKeys]:
    """The key sets the server's directory lists under ``liaison_id`` (unproven)."""
    found = []
    for info in client.liaisons.keys(liaison_id):
        try:
            found.append(LiaisonPublicKeys.from_json({"sign": info.signing_public,
                                                      "box": info.encryption_public}))
        except CryptoError as exc:
            raise ProtocolError(f"the directory lists a malformed key {info.key_id}") from exc
    return found


def login_self_check(kt: KeyTransparency, client: Client, liaison_id: str,
                     profile: Profile) -> None:
    """At each login: every key entry under our name is a key we hold (warn loudly if not)."""
    try:
        self_check(kt, liaison_id, profile.held_public_keys(),
                   served=served_keys(client, liaison_id), scans=ProfileScans(profile))
    except KeyNotProven as exc:
        err().print(f"[bold red]WARNING: your key entries in the ledger are not what you hold, "
                    f"or not all shown to you: {exc}[/]\nWhat is sent to you may be readable "
                    "by someone else, and they may sign as you. Tell the centre's coordinators "
                    "and auditors now; run `cadena keys check` for details.")
    except ClientError as exc:
        warn(f"your keys could not be checked against the ledger at login: {exc}")


@contextmanager
def connect(ctx: typer.Context, name: str | None, *,
            use_agent: bool = True) -> Iterator[Connection]:
    """A :class:`Client` for the profile: its server, liaison, keys and saved token.

    With the profile's local agent running (``cadena agent start``) and
    ``use_agent``, the keys are the agent's (:class:`client.agent.AgentKeys`:
    no passphrase, no KDF) and so is the token; without one, the key file is
    opened when a login or a signature first needs it.
    """
    profile = open_profile(ctx, name)
    config = profile.config()
    if not config.server:
        raise ProfileError(f"profile {profile.name!r} has no server "
                           f"(run: cadena profile set --server URL --profile {profile.name})")
    credentials = None
    agent = find_agent(profile) if use_agent and config.liaison else None
    for alert in agent.alerts if agent is not None else []:
        if alert.get("kind") == "no-trust-roots":  # said where keys are used, as without it
            continue
        err().print(f"[bold red]WARNING ({alert.get('kind')}): {alert.get('detail')}[/] "
                    "(found by the local agent at login; run `cadena keys check`)")
    if config.liaison and (agent is not None or profile.has_keys()):
        verifier = pinned_verifier(config)
        keys: KeyHolder | Callable[[], KeyHolder] = (
            AgentKeys(agent) if agent is not None
            else lambda: profile.load_keys(passphrase_source()))
        credentials = Credentials(config.liaison, keys,
                                  origin=verifier.name if verifier else None)

    def pinned(liaison_id: str, key: PinnedKey) -> None:
        if key.how == "rotation":
            err().print(f"{liaison_id} rotated their key, proven in the witnessed ledger and "
                        f"signed by the key pinned here: now pinned too, fingerprint "
                        f"[bold]{key.fingerprint}[/]")
            return
        err().print(f"pinned the key of {liaison_id}, proven in the ledger: "
                    f"fingerprint [bold]{key.fingerprint}[/]; compare it with {liaison_id} and run "
                    f"`cadena contacts verify {liaison_id} --fingerprint ...`")

    injected = deps(ctx)
    pins = ContactBook(profile, me=config.liaison, on_pin=pinned, clock=injected.clock)
    token = agent.token() if agent is not None else profile.saved_token(config)
    client = Client(config.server, http=injected.http, credentials=credentials,
                    token=token, clock=injected.clock, pins=pins)
    kt = _transparency(client, profile, pins)

    def keep(token: Token) -> None:
        if agent is None:  # the agent's token lives in the agent's memory only
            profile.save_token(config, token)
        if kt is not None and config.liaison:
            login_self_check(kt, client, config.liaison, profile)

    client.session.on_login = keep
    try:
        yield Connection(client, profile, config)
    finally:
        client.close()
