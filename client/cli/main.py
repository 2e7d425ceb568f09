"""``cadena``: the liaison's command line (keys, profiles, login, coordination, audit).

Commands are grouped by feature; coordinators' commands are in
:mod:`client.cli.admin`, the auditor's in :mod:`client.cli.audit`. Shared
plumbing (options, injected HTTP client, exit codes) is in
:mod:`client.cli.common`. Documentation: ``docs/cli.md``.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any

import typer
from nacl import pwhash

from client.agent import find_agent
from client.cli import admin as cli_admin
from client.cli import audit as cli_audit
from client.cli import contacts as cli_contacts
from client.cli import demo
from client.cli import desk as cli_desk
from client.cli import packets as cli_packets
from client.cli import trust as cli_trust
from client.cli.agent import agent_app
from client.cli.certificate import certificate_app
from client.cli.common import (
    Connection,
    JsonOpt,
    ProfileOpt,
    connect,
    deps,
    err,
    guarded,
    open_profile,
    out,
    passphrase_source,
    pinned_verifier,
    print_json,
    print_table,
    when,
)
from client.errors import ProblemError, ProfileError, Unauthenticated
from client.profile import Profile, cadena_home
from client.sdk import Client
from client.session import Credentials
from client.trust import load_trust
from crypto import LiaisonKeys, LiaisonPublicKeys, save_keys
from witness.cli import witness_app  # importing it also leaves flags bare in every --help

app = typer.Typer(name="cadena", no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Cadena: secure case-information exchange with a verifiable ledger.")
keys_app = typer.Typer(no_args_is_help=True,
                       help="Your liaison keys (private keys never leave this machine).")
profile_app = typer.Typer(no_args_is_help=True, help="Local profiles: server, liaison id, pins.")
app.add_typer(keys_app, name="keys")
app.add_typer(profile_app, name="profile")
cli_admin.register(app)
cli_audit.register(app)
cli_packets.register(app)
cli_contacts.register(app)
cli_trust.register(app, keys_app)
app.command("demo")(demo.demo)
app.command("desk")(cli_desk.desk)
app.add_typer(witness_app, name="witness")
app.add_typer(certificate_app, name="certificate")
app.add_typer(agent_app, name="agent")


@app.callback()
def root(ctx: typer.Context) -> None:
    """Cadena: secure case-information exchange with a verifiable ledger."""
    ctx.obj = deps(ctx)


# -- keys ----------------------------------------------------------------------


class KdfStrength(enum.StrEnum):
    """Argon2id cost profiles of libsodium for the key file's passphrase."""

    SENSITIVE = "sensitive"
    MODERATE = "moderate"
    INTERACTIVE = "interactive"


_KDF = {
    KdfStrength.SENSITIVE: (pwhash.argon2id.OPSLIMIT_SENSITIVE, pwhash.argon2id.MEMLIMIT_SENSITIVE),
    KdfStrength.MODERATE: (pwhash.argon2id.OPSLIMIT_MODERATE, pwhash.argon2id.MEMLIMIT_MODERATE),
    KdfStrength.INTERACTIVE: (pwhash.argon2id.OPSLIMIT_INTERACTIVE,
                              pwhash.argon2id.MEMLIMIT_INTERACTIVE),
}


def public_json(profile: Profile, public: LiaisonPublicKeys) -> dict[str, Any]:
    """The public key set as ``keys generate/show --json`` print it."""
    data = public.to_json()
    return {"profile": profile.name, "key_id": public.key_id, "fingerprint": public.fingerprint,
            "signing_public": data["sign"], "encryption_public": data["box"],
            "key_file": str(profile.key_path), "encrypted": profile.is_encrypted()}


def _show_public(profile: Profile, public: LiaisonPublicKeys, as_json: bool) -> None:
    data = public_json(profile, public)
    if as_json:
        print_json(data)
        return
    console = out()
    console.print(f"Fingerprint (read it out to the coordinator): [bold]{public.fingerprint}[/]")
    console.print(f"Key id:            {public.key_id}")
    console.print(f"Signing public:    {data['signing_public']}")
    console.print(f"Encryption public: {data['encryption_public']}")
    console.print(f"Key file:          {profile.key_path}"
                  f" ({'encrypted' if data['encrypted'] else 'NOT encrypted'})")


@keys_app.command("generate")
@guarded
def keys_generate(
    ctx: typer.Context, profile: ProfileOpt = None, as_json: JsonOpt = False,
    no_passphrase: Annotated[bool, typer.Option(
        "--no-passphrase", help="Store the private key unencrypted (explicitly).")] = False,
    *, kdf: Annotated[KdfStrength, typer.Option(
        help="Argon2id cost for the passphrase (sensitive: 1 GiB, a few seconds).")
    ] = KdfStrength.SENSITIVE,
) -> None:
    """Create a new key set in the profile and print what the coordinator needs to enrol it."""
    target = open_profile(ctx, profile)
    if target.has_keys():
        raise ProfileError(f"profile {target.name!r} has keys already; they are never "
                           "overwritten (use another --profile)")
    keys = LiaisonKeys.generate()
    target.save_key_file(_key_file(keys, no_passphrase, kdf))
    if no_passphrase:
        err().print("[yellow]warning:[/] the private key is stored unencrypted "
                    f"in {target.key_path}")
    _show_public(target, keys.public, as_json)


def _key_file(keys: LiaisonKeys, no_passphrase: bool, kdf: KdfStrength) -> bytes:
    if no_passphrase:
        return save_keys(keys, None, allow_plaintext=True)
    opslimit, memlimit = _KDF[kdf]
    return save_keys(keys, passphrase_source(confirm=True)(), opslimit=opslimit,
                     memlimit=memlimit)


def _settle_staged(ctx: typer.Context, conn: Connection) -> bool:
    """Finish or drop an interrupted rotation; ``True`` if the server had accepted it.

    The staged key set was accepted exactly when the server lets it log in.
    """
    target = conn.profile
    if not target.staged_key_path.exists():
        return False
    staged = target.load_staged_keys(passphrase_source())
    with Client(conn.client.session.base_url, http=deps(ctx).http,
                credentials=Credentials(str(conn.config.liaison), staged)) as probe:
        try:
            probe.login()
        except Unauthenticated:
            target.discard_staged_keys()
            return False
    retired = target.promote_staged_keys(target.public_keys().key_id)
    err().print(f"an interrupted rotation had been accepted: this profile now uses key "
                f"{staged.public.key_id}; the old key set is kept in {retired}")
    return True


@keys_app.command("rotate")
@guarded
def keys_rotate(
    ctx: typer.Context, profile: ProfileOpt = None, as_json: JsonOpt = False,
    no_passphrase: Annotated[bool, typer.Option(
        "--no-passphrase", help="Store the new private key unencrypted (explicitly).")] = False,
    *, kdf: Annotated[KdfStrength, typer.Option(
        help="Argon2id cost for the new key's passphrase.")] = KdfStrength.SENSITIVE,
) -> None:
    """Replace your key set: signed by the current key, with proof of the new one.

    The new key file is saved before the server is asked; the old one is
    kept (``keys.<key id>.retired.json``): only it opens packets wrapped to it.
    """
    if find_agent(open_profile(ctx, profile)) is not None:
        raise ProfileError("an agent holds this profile's keys: stop it first (cadena agent "
                           "stop); rotation reads the key file, and the agent would keep the "
                           "old keys")
    with connect(ctx, profile, use_agent=False) as conn:
        target = conn.profile
        if _settle_staged(ctx, conn):
            _show_public(target, target.public_keys(), as_json)
            return
        old_key_id = target.public_keys().key_id
        new = LiaisonKeys.generate()
        target.stage_key_file(_key_file(new, no_passphrase, kdf))
        try:
            conn.client.liaisons.rotate(new)
        except ProblemError as exc:
            if exc.status < 500:  # refused: nothing changed on the server
                target.discard_staged_keys()
            raise
        retired = target.promote_staged_keys(old_key_id)
    err().print(f"rotated: the old key set is kept in {retired}; give your contacts "
                "the new fingerprint")
    _show_public(target, new.public, as_json)


@keys_app.command("show")
@guarded
def keys_show(ctx: typer.Context, profile: ProfileOpt = None, as_json: JsonOpt = False) -> None:
    """Print the profile's public keys and fingerprint (no passphrase needed)."""
    target = open_profile(ctx, profile)
    _show_public(target, target.public_keys(), as_json)


# -- profiles ------------------------------------------------------------------


@profile_app.command("set")
@guarded
def profile_set(
    ctx: typer.Context, profile: ProfileOpt = None,
    server: Annotated[str | None, typer.Option(help="Server base URL (https://...).")] = None,
    liaison: Annotated[str | None, typer.Option(help="Your liaison id on that server.")] = None,
    *, ledger_key: Annotated[str | None, typer.Option(
        "--ledger-key", help="Pin the ledger's verifier key (origin+keyid+base64).")] = None,
) -> None:
    """Set the profile's server, liaison id and (optionally) the pinned ledger key."""
    target = open_profile(ctx, profile)
    config = target.config()
    if server is not None:
        if not server.startswith(("https://", "http://")):
            raise typer.BadParameter("the server must be an http(s) URL", param_hint="--server")
        config.server = server.rstrip("/")
    if liaison is not None:
        config.liaison = liaison
    if ledger_key is not None:
        config.ledger_key = ledger_key.strip()
        pinned_verifier(config)
    target.save_config(config)
    target.forget_token()
    out().print(f"profile {target.name}: server={config.server or '-'} "
                f"liaison={config.liaison or '-'} ledger key={config.ledger_key or 'not pinned'}")


def _profile_json(target: Profile) -> dict[str, Any]:
    config = target.config()
    public = target.public_keys() if target.has_keys() else None
    return {"name": target.name, "path": str(target.path), "server": config.server,
            "liaison": config.liaison, "ledger_key": config.ledger_key,
            "key_id": public.key_id if public else None,
            "fingerprint": public.fingerprint if public else None,
            "key_transparency": _transparency_status(target)}


def _transparency_status(target: Profile) -> str:
    roots = load_trust(target)
    if roots is None:
        return ("off: no trust roots (cadena trust set): no contact's key can be proven, "
                "so none is used")
    return f"on: ledger key and {roots.quorum} of {len(roots.witnesses)} witnesses"


@profile_app.command("show")
@guarded
def profile_show(ctx: typer.Context, profile: ProfileOpt = None, as_json: JsonOpt = False) -> None:
    """Show the profile's settings and key."""
    data = _profile_json(open_profile(ctx, profile))
    if as_json:
        print_json(data)
        return
    print_table(f"Profile {data['name']}", ["setting", "value"],
                [(k, v) for k, v in data.items() if k != "name"])


@profile_app.command("list")
@guarded
def profile_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List the profiles on this machine."""
    home = deps(ctx).home or cadena_home()
    names = sorted(p.name for p in home.iterdir() if p.is_dir()) if home.is_dir() else []
    rows = [_profile_json(Profile(name, home)) for name in names]
    if as_json:
        print_json(rows)
        return
    print_table(f"Profiles in {home}", ["name", "server", "liaison", "key id"],
                [(r["name"], r["server"], r["liaison"], r["key_id"]) for r in rows])


# -- login ---------------------------------------------------------------------


@app.command()
@guarded
def login(ctx: typer.Context, profile: ProfileOpt = None, as_json: JsonOpt = False) -> None:
    """Log in now (sign a challenge with your key) and show when the token and clearance end."""
    with connect(ctx, profile) as conn:
        token = conn.client.login()
    if as_json:
        data = token.model_dump(mode="json")
        data.pop("token")
        print_json(data)
        return
    console = out()
    console.print(f"logged in as {conn.config.liaison} at {conn.config.server}")
    console.print(f"token expires:     {when(token.expires_at)}")
    console.print(f"clearance expires: {when(token.clearance_expires_at)}")
    if token.ledger is not None:
        console.print(f"ledger entry:      {token.ledger.index}")


def main() -> None:
    """Entry point of the ``cadena`` script."""
    app()


if __name__ == "__main__":
    main()
