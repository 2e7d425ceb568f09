"""``cadena contacts``: the contacts' keys pinned in this profile (see :mod:`client.contacts`)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from client.cli.common import (
    JsonOpt,
    ProfileOpt,
    connect,
    guarded,
    open_profile,
    out,
    print_json,
    print_table,
)
from client.contacts import ContactBook
from client.transfer import directory_keys

contacts_app = typer.Typer(no_args_is_help=True, help=(
    "Contacts' keys pinned in this profile: the server cannot swap a key you checked."))


def register(app: typer.Typer) -> None:
    """Add the ``contacts`` command group to ``app``."""
    app.add_typer(contacts_app, name="contacts")


@contacts_app.command("list")
@guarded
def list_contacts(ctx: typer.Context, profile: ProfileOpt = None,
                  as_json: JsonOpt = False) -> None:
    """Every pinned key: contact, key id, fingerprint, when and how it was pinned."""
    pins = ContactBook(open_profile(ctx, profile)).pins()
    if as_json:
        print_json({cid: [asdict(k) for k in keys] for cid, keys in pins.items()})
        return
    print_table("Pinned contact keys", ["contact", "key id", "fingerprint", "pinned", "how"],
                [(cid, k.key_id, k.fingerprint, k.pinned_at, k.how)
                 for cid, keys in pins.items() for k in keys])


FingerprintOpt = Annotated[str, typer.Option(
    help="The fingerprint the contact read out to you (spacing does not matter).")]


@contacts_app.command("verify")
@guarded
def verify_contact(ctx: typer.Context, liaison: str, fingerprint: FingerprintOpt,
                   profile: ProfileOpt = None, *, as_json: JsonOpt = False) -> None:
    """Pin the contact's current key as verified, if it has the fingerprint they read out.

    Also the way to accept a contact's new key after they rotated it: the keys
    pinned before stay, for checking what they signed earlier.
    """
    with connect(ctx, profile) as conn:
        keys = directory_keys(conn.client, liaison)
        pinned = ContactBook(conn.profile).accept(liaison, keys, fingerprint)
    if as_json:
        print_json({"contact": liaison, **asdict(pinned)})
        return
    out().print(f"pinned key {pinned.key_id} of {liaison} as verified "
                f"(fingerprint {pinned.fingerprint})")


@contacts_app.command("forget")
@guarded
def forget_contact(ctx: typer.Context, liaison: str, profile: ProfileOpt = None) -> None:
    """Drop every key pinned for a contact (the next one seen is pinned on first use)."""
    if not ContactBook(open_profile(ctx, profile)).forget(liaison):
        raise typer.BadParameter(f"no key is pinned for {liaison}", param_hint="LIAISON")
    out().print(f"forgot the keys pinned for {liaison}")
