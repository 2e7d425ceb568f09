"""Onward sharing and receipts, verified on this machine.

:func:`share_packet` lets a holder pass a packet's content key to another
liaison without re-encrypting anything: the envelope is verified and opened
(:func:`client.transfer.open_remote`), the key is re-wrapped to the new
recipient's current key and the share is signed (``crypto.share_content_key``).
A packet with handling code **H2** needs the originator's recorded
permission: without an approved request, the first call asks for it (a
share request) and says so; once the originator approved, the same call
shares. :func:`verified_receipts` lets an originator check every receipt
against the recipients' keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from client.errors import UsageError
from client.packet_models import PacketRead, ShareCreated, ShareRequest, ShareRequestDone
from client.sdk import Client
from client.transfer import open_remote, recipient_keys
from client.verify import verified_header, verified_receipt
from crypto import HandlingCode, KeyHolder, PacketHeader, Receipt, share_content_key

ShareStep = Literal["shared", "requested", "pending"]


@dataclass(frozen=True)
class ShareOutcome:
    """What :func:`share_packet` did: shared, asked the originator, or is still waiting."""

    step: ShareStep
    handling: str
    shared: ShareCreated | None = None
    request: ShareRequest | None = None


def _approval(client: Client, packet_id: str, recipient_id: str) -> ShareRequest | None:
    requests = client.packets.share_requests(packet_id).requests
    mine = [r for r in requests if r.recipient_id == recipient_id and r.status != "used"]
    approved = [r for r in mine if r.status == "approved"]
    chosen = approved or mine
    return chosen[0] if chosen else None


def share_packet(client: Client, me: str, keys: KeyHolder, packet_id: str,
                 *, recipient_id: str) -> ShareOutcome:
    """Share a packet with ``recipient_id`` (asking the originator first for H2 packets)."""
    read = client.packets.retrieve(packet_id)
    header, opened, _ = open_remote(client, me, keys, read)
    handling = str(header.meta.handling)
    if header.meta.handling == HandlingCode.H2:
        request = _approval(client, packet_id, recipient_id)
        if request is None:
            asked: ShareRequestDone = client.packets.request_share(packet_id, recipient_id)
            return ShareOutcome("requested", handling, request=asked)
        if request.status != "approved":
            return ShareOutcome("pending", handling, request=request)
    target = recipient_keys(client, [recipient_id])[recipient_id]
    signed = share_content_key(opened, keys, me, recipient_id, target)
    shared = client.packets.share(packet_id, signed.share, signed.signature)
    return ShareOutcome("shared", handling, shared=shared)


def pending_request(client: Client, packet_id: str, recipient_id: str | None) -> ShareRequest:
    """The pending share request of a packet (for ``recipient_id`` if given); exactly one."""
    pending = [r for r in client.packets.share_requests(packet_id).requests
               if r.status == "pending"
               and (recipient_id is None or r.recipient_id == recipient_id)]
    if len(pending) != 1:
        who = f" for {recipient_id}" if recipient_id else ""
        raise UsageError(f"packet {packet_id} has {len(pending)} pending share requests{who}; "
                         "name the request id")
    return pending[0]


@dataclass(frozen=True)
class VerifiedReceipts:
    """A sent packet's signed header and each receipt, verified with its recipient's key."""

    read: PacketRead
    header: PacketHeader
    receipts: list[Receipt]


def verified_receipts(client: Client, packet_id: str) -> VerifiedReceipts:
    """Every receipt of a packet the caller sent, each verified (raise on the first fault)."""
    read = client.packets.retrieve(packet_id)
    header, _ = verified_header(client.liaisons, read)
    stored = client.packets.receipts(packet_id).receipts
    return VerifiedReceipts(read, header, [verified_receipt(client.liaisons, header, read.header,
                                                            info) for info in stored])
