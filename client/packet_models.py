"""Typed values of the packets API (``docs/api-packets.md``), as the client reads them.

Like :mod:`client.models`: frozen, unknown members ignored, times aware UTC,
binary members decoded from canonical base64. None of these values is trusted
for what it says about a packet's content: :mod:`client.verify` checks them
against the sender-signed header.
"""

from __future__ import annotations

from typing import Literal

from client.models import Base64Bytes, LedgerRef, LevelName, Model, UtcDatetime

PacketStatusName = Literal["active", "withdrawn"]
ShareRequestStatusName = Literal["pending", "approved", "used"]
BoxName = Literal["inbox", "sent"]


class BlobStored(Model):
    """A ciphertext stream the server holds (``PUT /v1/blobs/{sha256}``)."""

    sha256: str
    size: int
    created: bool
    ledger: LedgerRef


class PacketSummary(Model):
    """A packet's metadata as the server lists it (never content)."""

    id: str
    channel_id: str
    sender_id: str
    recipients: list[str]
    classification: LevelName
    handling: str
    evaluation: str
    case_reference: str | None
    legal_basis: str | None
    created: UtcDatetime
    submitted_at: UtcDatetime
    status: PacketStatusName
    in_reply_to: str | None
    urgency: str | None
    due: UtcDatetime | None
    overdue: bool


class PacketCreated(PacketSummary):
    """A submitted packet and the ledger entry of its submission."""

    ledger: LedgerRef


class PacketWithdrawn(PacketCreated):
    """A withdrawn packet: when and why."""

    withdrawn_at: UtcDatetime | None
    withdrawal_reason: str | None


class PacketPage(Model):
    """One page of a listing, newest first."""

    packets: list[PacketSummary]
    next_cursor: str | None
    ledger: LedgerRef


class StreamInfo(Model):
    """One ciphertext stream as the server describes it."""

    index: int
    sha256: str
    length: int


class KeyShareInfo(Model):
    """The signed key share through which the caller holds a packet's key."""

    share: Base64Bytes
    signature: Base64Bytes
    sharer_id: str


class PacketRead(PacketSummary):
    """A retrieved packet: signed header, signature and, for a holder, their wrapped key."""

    sender_key_id: str
    header: Base64Bytes
    signature: Base64Bytes
    header_sha256: str
    streams: list[StreamInfo]
    wrapped_key: Base64Bytes | None
    key_id: str | None
    key_share: KeyShareInfo | None
    withdrawn_at: UtcDatetime | None
    withdrawal_reason: str | None
    ledger: LedgerRef


class ReceiptInfo(Model):
    """A recipient's signed receipt as stored by the server."""

    recipient_id: str
    key_id: str
    receipt: Base64Bytes
    signature: Base64Bytes
    received: UtcDatetime
    recorded_at: UtcDatetime


class ReceiptCreated(ReceiptInfo):
    """A receipt accepted, with its ledger entry."""

    ledger: LedgerRef


class ReceiptPage(Model):
    """Every receipt of a packet (its originator only)."""

    receipts: list[ReceiptInfo]
    ledger: LedgerRef


class ShareRequest(Model):
    """A request to share a packet onward, and where it stands."""

    id: str
    packet_id: str
    requested_by: str
    recipient_id: str
    status: ShareRequestStatusName
    requested_at: UtcDatetime
    decided_at: UtcDatetime | None


class ShareRequestDone(ShareRequest):
    """A share request after an action, with its ledger entry."""

    ledger: LedgerRef


class ShareRequestPage(Model):
    """Share requests of a packet visible to the caller."""

    requests: list[ShareRequest]
    ledger: LedgerRef


class ShareCreated(Model):
    """A key share accepted: the new recipient now holds the packet."""

    packet_id: str
    recipient_id: str
    key_id: str
    shared_by: str
    approval: str | None
    ledger: LedgerRef


class Thread(Model):
    """A request and the replies the caller may see, oldest first."""

    root: str
    packets: list[PacketSummary]
    ledger: LedgerRef
