"""``cadena trust`` (the profile's trust roots) and ``cadena keys check`` (self-monitoring).

See :mod:`client.trust` and :mod:`client.transparency`; docs/cli.md.
"""

from __future__ import annotations

from typing import Annotated

import typer

from client.cli.common import (
    JsonOpt,
    ProfileOpt,
    connect,
    err,
    guarded,
    open_profile,
    out,
    print_json,
    print_table,
    served_keys,
    warn,
)
from client.errors import UsageError
from client.keychain import KeyNotProven
from client.keylog import ProfileScans
from client.transparency import KeyTransparency, self_check
from client.trust import TrustRoots, key_fingerprint, load_trust, save_trust

trust_app = typer.Typer(no_args_is_help=True, help=(
    "Trust roots: the ledger key, the witnesses and their quorum, set out of band."))


def register(app: typer.Typer, keys_app: typer.Typer) -> None:
    """Add ``trust`` to ``app`` and ``check`` to the ``keys`` group."""
    app.add_typer(trust_app, name="trust")
    keys_app.command("check")(keys_check)


def _show(roots: TrustRoots) -> None:
    rows = [("ledger", str(roots.ledger), key_fingerprint(str(roots.ledger)))]
    rows += [("witness", str(w), key_fingerprint(str(w))) for w in roots.witnesses]
    print_table("Trust roots (compare each fingerprint with the one published out of band)",
                ["role", "verifier key", "fingerprint"], rows)
    out().print(f"quorum: {roots.quorum} of {len(roots.witnesses)} witnesses")


@trust_app.command("set")
@guarded
def trust_set(
    ctx: typer.Context,
    ledger_key: Annotated[str, typer.Option(
        "--ledger-key", help="The ledger's note verifier key (origin+keyid+base64).")],
    witness: Annotated[list[str] | None, typer.Option(
        "--witness", help="A witness's cosignature verifier key (repeat for each).")] = None,
    quorum: Annotated[int, typer.Option(help="How many witnesses must cosign (0: none).")] = 0,
    *, yes: Annotated[bool, typer.Option("--yes", help="Do not ask: the fingerprints were "
                                      "compared already.")] = False,
    profile: ProfileOpt = None,
) -> None:
    """Set the trust roots, after the fingerprints are compared with the centre's."""
    target = open_profile(ctx, profile)
    roots = TrustRoots.parse(ledger_key, witness or [], quorum)
    _show(roots)
    if not yes and not typer.confirm("Do these fingerprints match the published ones?",
                                     err=True):
        raise UsageError("trust roots not changed")
    save_trust(target, roots)
    config = target.config()
    if config.ledger_key and config.ledger_key != str(roots.ledger):
        warn(f"the pinned ledger key {config.ledger_key} is replaced by {roots.ledger}")
    config.ledger_key = str(roots.ledger)
    target.save_config(config)
    if quorum == 0:
        warn("quorum 0: you trust the operator alone; a dishonest operator could show you "
             "a ledger others do not see")
    out().print(f"profile {target.name}: trust roots set")


@trust_app.command("show")
@guarded
def trust_show(ctx: typer.Context, profile: ProfileOpt = None, as_json: JsonOpt = False) -> None:
    """Show the trust roots and their fingerprints."""
    roots = load_trust(open_profile(ctx, profile))
    if roots is None:
        raise UsageError("no trust roots: keys are checked against pins only "
                         "(run: cadena trust set --ledger-key ... --witness ... --quorum N)")
    if as_json:
        print_json({**roots.to_json(), "fingerprints": {
            str(k): key_fingerprint(str(k)) for k in (roots.ledger, *roots.witnesses)}})
        return
    _show(roots)


@guarded
def keys_check(ctx: typer.Context, profile: ProfileOpt = None, as_json: JsonOpt = False) -> None:
    """Check every key entry under your name in the witnessed ledger is a key you hold."""
    with connect(ctx, profile) as conn:
        kt = conn.client.liaisons.pins
        if not isinstance(kt, KeyTransparency) or not conn.config.liaison:
            raise UsageError("set the trust roots first (cadena trust set) and the liaison id")
        try:
            history = self_check(kt, conn.config.liaison, conn.profile.held_public_keys(),
                                 served=served_keys(conn.client, conn.config.liaison),
                                 scans=ProfileScans(conn.profile))
        except KeyNotProven as exc:
            err().print(f"[bold red]WARNING: {exc}[/]\nA key you do not hold may be used in "
                        "your name. Tell the centre's coordinators and auditors now.")
            raise
    rows = [(k.index, k.action, k.keys.key_id, k.keys.fingerprint,
             "revoked" if k.revoked_at_index is not None else "") for k in history.keys]
    if as_json:
        print_json({"liaison": history.liaison_id, "keys": [
            {"index": i, "action": a, "key_id": kid, "fingerprint": fp, "status": st}
            for i, a, kid, fp, st in rows]})
        return
    print_table(f"Key entries of {history.liaison_id}: all held by this profile",
                ["index", "action", "key id", "fingerprint", "status"], rows)
