"""Prosecutors' commands around a packet: share, approve-share, share-requests,
withdraw, thread and receipts (registered by :func:`client.cli.packets.register`)."""

from __future__ import annotations

from typing import Annotated

import typer

from client.cli.common import (
    Connection,
    JsonOpt,
    ProfileOpt,
    connect,
    guarded,
    out,
    print_json,
    print_table,
    when,
)
from client.errors import ProfileError
from client.packet_models import ShareRequest
from client.sharing import pending_request, share_packet, verified_receipts
from crypto import KeyHolder

PacketArg = Annotated[str, typer.Argument(help="The packet id.")]


def register(app: typer.Typer) -> None:
    """Add the sharing, withdrawal, thread and receipt commands to ``app``."""
    app.command("share")(share)
    app.command("approve-share")(approve_share)
    app.command("share-requests")(share_requests)
    app.command("withdraw")(withdraw)
    app.command("thread")(thread)
    app.command("receipts")(receipts)


def liaison_keys(conn: Connection) -> tuple[str, KeyHolder]:
    """The profile's liaison id and private keys (asking the passphrase at most once)."""
    credentials = conn.client.session.credentials
    if credentials is None:
        raise ProfileError(f"profile {conn.profile.name!r} needs a liaison id and keys")
    return credentials.liaison_id, credentials.signing_keys()


@guarded
def share(ctx: typer.Context, packet_id: PacketArg,
          to: Annotated[str, typer.Option("--to", help="The liaison to share it with.")],
          profile: ProfileOpt = None, *, as_json: JsonOpt = False) -> None:
    """Share a packet you hold onward (H2: asks the originator first, then shares)."""
    with connect(ctx, profile) as conn:
        me, keys = liaison_keys(conn)
        outcome = share_packet(conn.client, me, keys, packet_id, recipient_id=to)
    if as_json:
        print_json({"step": outcome.step, "handling": outcome.handling,
                    "shared": outcome.shared.to_json() if outcome.shared else None,
                    "request": outcome.request.to_json() if outcome.request else None})
        return
    console = out()
    if outcome.shared is not None:
        approval = f", with approval {outcome.shared.approval}" if outcome.shared.approval else ""
        console.print(f"packet {packet_id} shared with {to} (key {outcome.shared.key_id}"
                      f"{approval}); ledger entry {outcome.shared.ledger.index}")
    elif outcome.request is not None and outcome.step == "requested":
        console.print(f"packet {packet_id} is {outcome.handling}: asked its originator to "
                      f"approve sharing with {to} (request {outcome.request.id}); run this "
                      "again once approved")
    elif outcome.request is not None:
        console.print(f"sharing with {to} still awaits the originator's approval "
                      f"(request {outcome.request.id})")


@guarded
def approve_share(
    ctx: typer.Context, packet_id: PacketArg,
    request_id: Annotated[str | None, typer.Argument(help="The request (default: the only "
                                                          "pending one).")] = None,
    for_: Annotated[str | None, typer.Option("--for", help="The pending request for this "
                                                           "liaison.")] = None,
    *, profile: ProfileOpt = None, as_json: JsonOpt = False,
) -> None:
    """Approve onward sharing of a packet you sent (needed for H2 packets)."""
    with connect(ctx, profile) as conn:
        rid = request_id or pending_request(conn.client, packet_id, for_).id
        done = conn.client.packets.approve_share(packet_id, rid)
    if as_json:
        print_json(done.to_json())
        return
    out().print(f"approved: {done.requested_by} may share {packet_id} with {done.recipient_id} "
                f"(request {done.id}); ledger entry {done.ledger.index}")


def _requests_table(items: list[ShareRequest]) -> None:
    print_table("Share requests", ["id", "requested by", "for", "status", "asked", "decided"],
                [(r.id, r.requested_by, r.recipient_id, r.status, when(r.requested_at),
                  when(r.decided_at)) for r in items], whole={"id"})


@guarded
def share_requests(ctx: typer.Context, packet_id: PacketArg, profile: ProfileOpt = None,
                   as_json: JsonOpt = False) -> None:
    """Share requests of a packet (all of them for its originator)."""
    with connect(ctx, profile) as conn:
        page = conn.client.packets.share_requests(packet_id)
    if as_json:
        print_json([r.to_json() for r in page.requests])
    else:
        _requests_table(page.requests)


@guarded
def withdraw(ctx: typer.Context, packet_id: PacketArg,
             reason: Annotated[str, typer.Option(help="Why (recorded in the ledger).")],
             profile: ProfileOpt = None, *, as_json: JsonOpt = False) -> None:
    """Withdraw a packet you sent: its key is no longer delivered to anyone."""
    with connect(ctx, profile) as conn:
        done = conn.client.packets.withdraw(packet_id, reason)
    if as_json:
        print_json(done.to_json())
        return
    out().print(f"packet {done.id} withdrawn at {when(done.withdrawn_at)}; "
                f"ledger entry {done.ledger.index}")


@guarded
def thread(ctx: typer.Context, packet_id: PacketArg, profile: ProfileOpt = None,
           as_json: JsonOpt = False) -> None:
    """A request and its replies that you may see, oldest first."""
    with connect(ctx, profile) as conn:
        found = conn.client.packets.thread(packet_id)
    if as_json:
        print_json({"root": found.root, "packets": [p.to_json() for p in found.packets]})
        return
    print_table(f"Thread {found.root}", ["id", "from", "to", "submitted", "urgency", "due",
                                          "status"],
                [(("  ↳ " if p.in_reply_to else "") + p.id, p.sender_id, ", ".join(p.recipients),
                  when(p.submitted_at), p.urgency, when(p.due),
                  p.status + (", OVERDUE" if p.overdue else "")) for p in found.packets],
                whole={"id"})


@guarded
def receipts(ctx: typer.Context, packet_id: PacketArg, profile: ProfileOpt = None,
             as_json: JsonOpt = False) -> None:
    """The signed receipts of a packet you sent, each verified with its recipient's key."""
    with connect(ctx, profile) as conn:
        found = verified_receipts(conn.client, packet_id)
    rows = [{"recipient": r.recipient.id, "key_id": r.recipient.key_id, "received": r.received,
             "statement_sha256": r.statement_sha256, "verified": True} for r in found.receipts]
    if as_json:
        print_json(rows)
        return
    missing = sorted(set(found.header.recipient_ids) - {r["recipient"] for r in rows})
    print_table(f"Receipts of {packet_id} (signatures verified)",
                ["recipient", "key id", "received"],
                [(r["recipient"], r["key_id"], r["received"]) for r in rows])
    if missing:
        out().print(f"no receipt yet from: {', '.join(missing)}")
