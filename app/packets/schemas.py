"""Request and response bodies of blobs and packets.

Binary values travel as standard base64. Every 2xx body carries ``ledger``:
the index and leaf hash of the entry the request appended.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.auth.schemas import B64_PATTERN, ID_PATTERN, LedgerRef
from app.clearances.schemas import LevelName
from app.models.packet import PacketStatus, ShareRequestStatus
from app.text import DisplayText
from crypto import MAX_ATTACHMENTS

MAX_ENVELOPE_B64 = 8 * 1024 * 1024
MAX_SIGNED_B64 = 1024 * 1024 + 4096
MAX_STREAM_INDEX = 1 + MAX_ATTACHMENTS
"""The highest stream index a header can list (manifest, message, the attachments)."""
MAX_INLINE = 64
"""At most this many streams inline in one submission (the rest go as blobs)."""
MAX_INLINE_STREAM_BYTES = 256 * 1024
"""The largest ciphertext stream a submission may carry inline (kept in its stream row)."""
SIGNATURE_B64 = Field(pattern=B64_PATTERN, min_length=88, max_length=88)

Box = Literal["inbox", "sent"]


class BlobRead(BaseModel):
    """A stored ciphertext blob."""

    sha256: str
    size: int
    created: bool
    ledger: LedgerRef


class InlineStream(BaseModel):
    """The ciphertext of one of the header's streams, sent with the envelope (base64)."""

    model_config = ConfigDict(extra="forbid")
    index: int = Field(ge=0, le=MAX_STREAM_INDEX)
    ciphertext: str = Field(pattern=B64_PATTERN,
                            max_length=4 * (MAX_INLINE_STREAM_BYTES + 2) // 3)


class PacketCreate(BaseModel):
    """Submit a packet: base64 of ``crypto.Envelope.to_bytes()``.

    ``inline_streams``: the ciphertext of any of the header's streams, for
    small packets, instead of uploading them as blobs first (one request
    instead of one per stream); the whole body stays within the JSON limit.
    """

    model_config = ConfigDict(extra="forbid")
    envelope: str = Field(pattern=B64_PATTERN, min_length=4, max_length=MAX_ENVELOPE_B64)
    inline_streams: list[InlineStream] = Field(default_factory=list, max_length=MAX_INLINE)


class StreamRead(BaseModel):
    """One ciphertext stream: index, SHA-256 and length (as the header signs them)."""

    index: int
    sha256: str
    length: int


class PacketSummary(BaseModel):
    """A packet's metadata (never content)."""

    id: str
    channel_id: str
    sender_id: str
    recipients: list[str]
    classification: LevelName
    handling: str
    evaluation: str
    case_reference: str | None
    legal_basis: str | None
    created: datetime
    submitted_at: datetime
    status: PacketStatus
    in_reply_to: str | None
    urgency: str | None
    due: datetime | None
    overdue: bool


class PacketCreated(PacketSummary):
    """A submitted packet and its ledger entry."""

    ledger: LedgerRef


class PacketWithdrawn(PacketCreated):
    """A withdrawn packet: when and why."""

    withdrawn_at: datetime | None
    withdrawal_reason: str | None


class PacketList(BaseModel):
    """A page of packets, newest first; pass ``next_cursor`` as ``cursor`` for more."""

    packets: list[PacketSummary]
    next_cursor: str | None
    ledger: LedgerRef


class KeyShareRead(BaseModel):
    """The signed key share through which the caller holds the key."""

    share: str
    signature: str
    sharer_id: str


class PacketRead(PacketSummary):
    """A packet for one caller: envelope parts and, for a holder, their wrapped key."""

    sender_key_id: str
    header: str
    signature: str
    header_sha256: str
    streams: list[StreamRead]
    wrapped_key: str | None
    key_id: str | None
    key_share: KeyShareRead | None
    withdrawn_at: datetime | None
    withdrawal_reason: str | None
    ledger: LedgerRef


class SignedObjectCreate(BaseModel):
    """A client-signed object (receipt or key share): its bytes and signature, base64."""

    model_config = ConfigDict(extra="forbid")
    signed: str = Field(pattern=B64_PATTERN, min_length=4, max_length=MAX_SIGNED_B64)
    signature: str = SIGNATURE_B64


class ReceiptRead(BaseModel):
    """A recipient's signed receipt as stored."""

    recipient_id: str
    key_id: str
    receipt: str
    signature: str
    received: datetime
    recorded_at: datetime


class ReceiptCreated(ReceiptRead):
    """A stored receipt and its ledger entry."""

    ledger: LedgerRef


class ReceiptList(BaseModel):
    """Every receipt of a packet."""

    receipts: list[ReceiptRead]
    ledger: LedgerRef


class ShareRequestCreate(BaseModel):
    """Ask the originator to let the packet be shared with ``recipient_id``."""

    model_config = ConfigDict(extra="forbid")
    recipient_id: str = Field(pattern=ID_PATTERN, max_length=128)


class ShareRequestRead(BaseModel):
    """A share request and where it stands."""

    id: str
    packet_id: str
    requested_by: str
    recipient_id: str
    status: ShareRequestStatus
    requested_at: datetime
    decided_at: datetime | None


class ShareRequestDone(ShareRequestRead):
    """A share request after an action, with its ledger entry."""

    ledger: LedgerRef


class ShareRequestList(BaseModel):
    """Share requests of a packet visible to the caller."""

    requests: list[ShareRequestRead]
    ledger: LedgerRef


class ShareCreated(BaseModel):
    """A key share accepted: the new recipient now holds a wrapped key."""

    packet_id: str
    recipient_id: str
    key_id: str
    shared_by: str
    approval: str | None
    ledger: LedgerRef


class WithdrawCreate(BaseModel):
    """Withdraw a packet, saying why."""

    model_config = ConfigDict(extra="forbid")
    reason: DisplayText = Field(min_length=1, max_length=500)


class ThreadRead(BaseModel):
    """A request and its replies (those the caller may see), oldest first."""

    root: str
    packets: list[PacketSummary]
    ledger: LedgerRef
