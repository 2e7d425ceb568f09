"""Coordinators' commands: states, liaisons, clearances and channels.

Listings are open to every liaison (the server filters what each may see);
changes need the coordinator role, which the server checks and logs.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer

from client.cli.common import JsonOpt, ProfileOpt, connect, guarded, out, print_json, print_table
from client.cli.common import when as fmt
from client.models import (
    Channel,
    ChannelKindName,
    Clearance,
    LevelName,
    Liaison,
    Model,
    RoleName,
    State,
)
from crypto import CryptoError, LiaisonPublicKeys

states_app = typer.Typer(no_args_is_help=True, help="Participating states (coordinators).")
liaisons_app = typer.Typer(no_args_is_help=True, help="Liaisons and their keys (coordinators).")
clearances_app = typer.Typer(no_args_is_help=True, help="Security clearances (coordinators).")
channels_app = typer.Typer(no_args_is_help=True, help="Exchange channels (coordinators).")

ReasonOpt = Annotated[str, typer.Option(help="Why (recorded in the ledger).")]


def register(app: typer.Typer) -> None:
    """Add the coordination command groups to ``app``."""
    app.add_typer(states_app, name="states")
    app.add_typer(liaisons_app, name="liaisons")
    app.add_typer(clearances_app, name="clearances")
    app.add_typer(channels_app, name="channels")


def _emit(items: list[Any], as_json: bool, render: Any) -> None:
    if as_json:
        print_json([item.to_json() for item in items])
    else:
        render(items)


def _one(item: Model, as_json: bool, message: str) -> None:
    if as_json:
        print_json(item.to_json())
    else:
        out().print(message)


# -- states --------------------------------------------------------------------


def _states_table(states: list[State]) -> None:
    print_table("States", ["code", "name", "status", "joining note", "since"],
                [(s.code, s.name, s.status, s.joining_note, fmt(s.created_at)) for s in states])


@states_app.command("list")
@guarded
def states_list(ctx: typer.Context, profile: ProfileOpt = None, as_json: JsonOpt = False) -> None:
    """List the participating states."""
    with connect(ctx, profile) as conn:
        _emit(conn.client.states.list(), as_json, _states_table)


@states_app.command("add")
@guarded
def states_add(
    ctx: typer.Context, code: Annotated[str, typer.Argument(help="ISO 3166-1 alpha-2 code.")],
    name: Annotated[str, typer.Option(help="The state's name.")],
    note: Annotated[str, typer.Option(help="Reference of the note by which it joined.")],
    *, profile: ProfileOpt = None, as_json: JsonOpt = False,
) -> None:
    """Enrol a participating state."""
    with connect(ctx, profile) as conn:
        state = conn.client.states.enrol(code.upper(), name, note)
    _one(state, as_json, f"state {state.code} ({state.name}) enrolled, {state.status}")


def _set_status(ctx: typer.Context, profile: str | None, code: str, status: Any, *, reason: str,
                as_json: bool) -> None:
    with connect(ctx, profile) as conn:
        state = conn.client.states.set_status(code.upper(), status, reason)
    _one(state, as_json, f"state {state.code} is now {state.status}")


@states_app.command("suspend")
@guarded
def states_suspend(ctx: typer.Context, code: str, reason: ReasonOpt,
                   profile: ProfileOpt = None, *, as_json: JsonOpt = False) -> None:
    """Suspend a state: its liaisons are refused until it is reactivated."""
    _set_status(ctx, profile, code, "suspended", reason=reason, as_json=as_json)


@states_app.command("reactivate")
@guarded
def states_reactivate(ctx: typer.Context, code: str, reason: ReasonOpt,
                      profile: ProfileOpt = None, *, as_json: JsonOpt = False) -> None:
    """Reactivate a suspended state."""
    _set_status(ctx, profile, code, "active", reason=reason, as_json=as_json)


@states_app.command("withdraw")
@guarded
def states_withdraw(ctx: typer.Context, code: str, reason: ReasonOpt,
                    profile: ProfileOpt = None, *, as_json: JsonOpt = False) -> None:
    """Record that a state withdrew from the centre."""
    _set_status(ctx, profile, code, "withdrawn", reason=reason, as_json=as_json)


# -- liaisons ------------------------------------------------------------------


def _liaisons_table(liaisons: list[Liaison]) -> None:
    print_table("Liaisons", ["id", "state", "name", "role", "key id", "fingerprint"],
                [(x.id, x.state_code, x.name, x.role,
                  x.current_key.key_id if x.current_key else None,
                  x.current_key.fingerprint if x.current_key else None) for x in liaisons])


@liaisons_app.command("list")
@guarded
def liaisons_list(
    ctx: typer.Context, state: Annotated[str | None, typer.Option(help="Only this state.")] = None,
    profile: ProfileOpt = None, as_json: JsonOpt = False,
) -> None:
    """List liaisons with their current key."""
    with connect(ctx, profile) as conn:
        _emit(conn.client.liaisons.list(state), as_json, _liaisons_table)


def _public_keys(signing: str, encryption: str, fingerprint: str | None) -> LiaisonPublicKeys:
    try:
        keys = LiaisonPublicKeys(signing=base64.b64decode(signing, validate=True),
                                 encryption=base64.b64decode(encryption, validate=True))
    except (binascii.Error, CryptoError) as exc:
        raise typer.BadParameter(f"public keys must be 32 bytes of base64 each ({exc})") from exc
    if fingerprint is not None and " ".join(fingerprint.split()) != keys.fingerprint:
        raise typer.BadParameter(f"these keys have fingerprint {keys.fingerprint}, not the "
                                 "one the liaison read out: do not enrol them",
                                 param_hint="--fingerprint")
    return keys


@liaisons_app.command("enroll")
@guarded
def liaisons_enroll(
    ctx: typer.Context, liaison_id: Annotated[str, typer.Argument(help="The new liaison's id.")],
    state: Annotated[str, typer.Option(help="Their state's code.")],
    name: Annotated[str, typer.Option(help="Their name.")],
    *, signing_public: Annotated[str, typer.Option(help="Ed25519 public key, base64.")],
    encryption_public: Annotated[str, typer.Option(help="X25519 public key, base64.")],
    role: Annotated[str, typer.Option(help="prosecutor, coordinator or auditor.")] = "prosecutor",
    fingerprint: Annotated[str | None, typer.Option(
        help="The fingerprint the liaison read out; enrolment stops if it differs.")] = None,
    profile: ProfileOpt = None, as_json: JsonOpt = False,
) -> None:
    """Enrol a liaison with the public keys from their `cadena keys generate`."""
    if role not in ("prosecutor", "coordinator", "auditor"):
        raise typer.BadParameter("use prosecutor, coordinator or auditor", param_hint="--role")
    keys = _public_keys(signing_public, encryption_public, fingerprint)
    role_name: RoleName = role  # type: ignore[assignment]  # checked just above
    with connect(ctx, profile) as conn:
        liaison = conn.client.liaisons.enrol(liaison_id, state.upper(), name, role_name, keys=keys)
    _one(liaison, as_json, f"liaison {liaison.id} ({liaison.role}, {liaison.state_code}) "
         f"enrolled with key {keys.key_id}, fingerprint {keys.fingerprint}")


@liaisons_app.command("revoke-key")
@guarded
def liaisons_revoke_key(ctx: typer.Context, liaison_id: str, key_id: str, reason: ReasonOpt,
                        *, profile: ProfileOpt = None, as_json: JsonOpt = False) -> None:
    """Revoke a liaison's key set (lost or compromised); their tokens under it end."""
    with connect(ctx, profile) as conn:
        key = conn.client.liaisons.revoke_key(liaison_id, key_id, reason)
    _one(key, as_json, f"key {key.key_id} of {liaison_id} revoked at {fmt(key.revoked_at)}")


# -- clearances ----------------------------------------------------------------


def _clearances_table(items: list[Clearance]) -> None:
    print_table("Clearances", ["id", "liaison", "level", "from", "until", "in force", "revoked"],
                [(c.id, c.liaison_id, c.level, fmt(c.valid_from), fmt(c.valid_until),
                  "yes" if c.in_force else "no", fmt(c.revoked_at)) for c in items])


def _level(value: str) -> LevelName:
    upper = value.upper()
    if upper not in ("RESTRICTED", "CONFIDENTIAL", "SECRET"):
        raise typer.BadParameter("use RESTRICTED, CONFIDENTIAL or SECRET", param_hint="--level")
    return upper  # type: ignore[return-value]  # one of the three, checked above


def _until(start: datetime, days: int | None, until: datetime | None) -> datetime:
    if (days is None) == (until is None):
        raise typer.BadParameter("give exactly one of --days and --until")
    if until is not None:
        return until if until.tzinfo else until.replace(tzinfo=UTC)
    return start + timedelta(days=days or 0)


DaysOpt = Annotated[int | None, typer.Option(min=1, help="Valid for this many days.")]
UntilOpt = Annotated[datetime | None, typer.Option(help="Valid until (UTC unless stated).")]


@clearances_app.command("grant")
@guarded
def clearances_grant(
    ctx: typer.Context, liaison_id: str,
    level: Annotated[str, typer.Option(help="RESTRICTED, CONFIDENTIAL or SECRET.")],
    days: DaysOpt = None, *, until: UntilOpt = None, profile: ProfileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Grant a clearance from now, for --days or until --until."""
    start = datetime.now(UTC)
    end = _until(start, days, until)
    with connect(ctx, profile) as conn:
        item = conn.client.clearances.grant(liaison_id, _level(level), start, end)
    _one(item, as_json, f"clearance {item.id}: {item.liaison_id} {item.level} "
         f"until {fmt(item.valid_until)}")


@clearances_app.command("renew")
@guarded
def clearances_renew(ctx: typer.Context, clearance_id: str, days: DaysOpt = None,
                     until: UntilOpt = None, *, profile: ProfileOpt = None,
                     as_json: JsonOpt = False) -> None:
    """Renew a clearance: --days from now, or --until a date."""
    end = _until(datetime.now(UTC), days, until)
    with connect(ctx, profile) as conn:
        item = conn.client.clearances.renew(clearance_id, end)
    _one(item, as_json, f"clearance {item.id} renewed until {fmt(item.valid_until)}")


@clearances_app.command("revoke")
@guarded
def clearances_revoke(ctx: typer.Context, clearance_id: str, reason: ReasonOpt,
                      profile: ProfileOpt = None, *, as_json: JsonOpt = False) -> None:
    """Revoke a clearance at once."""
    with connect(ctx, profile) as conn:
        item = conn.client.clearances.revoke(clearance_id, reason)
    _one(item, as_json, f"clearance {item.id} of {item.liaison_id} revoked")


@clearances_app.command("list")
@guarded
def clearances_list(
    ctx: typer.Context,
    liaison: Annotated[str | None, typer.Option(help="Whose (default: yours).")] = None,
    profile: ProfileOpt = None, as_json: JsonOpt = False,
) -> None:
    """List the clearances of a liaison (yours by default)."""
    with connect(ctx, profile) as conn:
        _emit(conn.client.clearances.list(liaison), as_json, _clearances_table)


# -- channels ------------------------------------------------------------------


def _channels_table(items: list[Channel]) -> None:
    print_table("Channels", ["id", "name", "kind", "crime type", "min clearance", "members"],
                [(c.id, c.name, c.kind, c.crime_type, c.min_clearance, ", ".join(c.members))
                 for c in items])


@channels_app.command("create")
@guarded
def channels_create(
    ctx: typer.Context, channel_id: str, name: Annotated[str, typer.Option(help="Its name.")],
    kind: Annotated[str, typer.Option(help="bilateral, multilateral or specialized.")],
    *, min_clearance: Annotated[str, typer.Option(help="Lowest clearance of its members.")],
    crime_type: Annotated[str | None, typer.Option(help="For specialized channels.")] = None,
    member: Annotated[list[str] | None, typer.Option(help="A first member (repeat).")] = None,
    profile: ProfileOpt = None, as_json: JsonOpt = False,
) -> None:
    """Create a channel."""
    if kind not in ("bilateral", "multilateral", "specialized"):
        raise typer.BadParameter("use bilateral, multilateral or specialized", param_hint="--kind")
    kind_name: ChannelKindName = kind  # type: ignore[assignment]  # checked just above
    level = _level(min_clearance)
    with connect(ctx, profile) as conn:
        item = conn.client.channels.create(channel_id, name, kind_name, level, members=member or [],
                                           crime_type=crime_type)
    _one(item, as_json, f"channel {item.id} ({item.kind}, {item.min_clearance}) created")


@channels_app.command("add-member")
@guarded
def channels_add_member(ctx: typer.Context, channel_id: str, liaison_id: str,
                        profile: ProfileOpt = None, *, as_json: JsonOpt = False) -> None:
    """Add a liaison to a channel."""
    with connect(ctx, profile) as conn:
        item = conn.client.channels.add_member(channel_id, liaison_id)
    _one(item, as_json, f"channel {item.id}: members {', '.join(item.members)}")


@channels_app.command("remove-member")
@guarded
def channels_remove_member(ctx: typer.Context, channel_id: str, liaison_id: str,
                           profile: ProfileOpt = None, *, as_json: JsonOpt = False) -> None:
    """Take a liaison out of a channel (what was sent to them stays theirs)."""
    with connect(ctx, profile) as conn:
        item = conn.client.channels.remove_member(channel_id, liaison_id)
    _one(item, as_json, f"channel {item.id}: members {', '.join(item.members) or '(none)'}")


@channels_app.command("list")
@guarded
def channels_list(ctx: typer.Context, profile: ProfileOpt = None,
                  as_json: JsonOpt = False) -> None:
    """List the channels you belong to (coordinators see all)."""
    with connect(ctx, profile) as conn:
        _emit(conn.client.channels.list(), as_json, _channels_table)
