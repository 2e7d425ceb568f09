"""Packets, their wrapped keys, ciphertext streams, receipts and share requests.

The server stores only what the sender signed in clear (the header bytes,
verbatim), signatures, wrapped keys and references to ciphertext blobs. The
header lists ciphertext digests only, so nothing here lets the server test a
guess of the plaintext (DESIGN.md invariant 1).
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, Enum, ForeignKey, Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(cls, name=name, native_enum=False, length=16,
                values_callable=lambda e: [m.value for m in e], validate_strings=True)


class PacketStatus(enum.StrEnum):
    """Whether a packet's key is still delivered."""

    ACTIVE = "active"
    WITHDRAWN = "withdrawn"


class KeyOrigin(enum.StrEnum):
    """Who wrapped a holder's content key: the sender (header) or a sharer."""

    HEADER = "header"
    SHARE = "share"


class ShareRequestStatus(enum.StrEnum):
    """Where an onward-sharing request stands."""

    PENDING = "pending"
    APPROVED = "approved"
    USED = "used"


class Packet(Base):
    """A submitted packet: the signed header as received and what the server indexes."""

    __tablename__ = "packets"
    __table_args__ = (Index("ix_packets_submitted", "submitted_at", "id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    channel_id: Mapped[str] = mapped_column(ForeignKey("channels.id"), index=True)
    sender_id: Mapped[str] = mapped_column(ForeignKey("liaisons.id"), index=True)
    sender_key_id: Mapped[str] = mapped_column(ForeignKey("liaison_keys.key_id"))
    classification: Mapped[int] = mapped_column()
    handling: Mapped[str] = mapped_column(String(2))
    evaluation: Mapped[str] = mapped_column(String(2))
    case_reference: Mapped[str | None] = mapped_column(String(256), index=True, default=None)
    legal_basis: Mapped[str | None] = mapped_column(String(256), default=None)
    created: Mapped[datetime] = mapped_column(UTCDateTime())
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    in_reply_to: Mapped[str | None] = mapped_column(ForeignKey("packets.id"), index=True,
                                                    default=None)
    urgency: Mapped[str | None] = mapped_column(String(16), default=None)
    due: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    header: Mapped[bytes] = mapped_column(LargeBinary())
    header_sha256: Mapped[str] = mapped_column(String(64))
    signature: Mapped[bytes] = mapped_column(LargeBinary(64))
    status: Mapped[PacketStatus] = mapped_column(_enum(PacketStatus, "packet_status"))
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    withdrawal_reason: Mapped[str | None] = mapped_column(String(500), default=None)


class PacketKey(Base):
    """A holder's wrapped content key: a header recipient's, or one shared onward."""

    __tablename__ = "packet_keys"

    packet_id: Mapped[str] = mapped_column(ForeignKey("packets.id"), primary_key=True)
    liaison_id: Mapped[str] = mapped_column(ForeignKey("liaisons.id"), primary_key=True,
                                            index=True)
    key_id: Mapped[str] = mapped_column(ForeignKey("liaison_keys.key_id"))
    origin: Mapped[KeyOrigin] = mapped_column(_enum(KeyOrigin, "packet_key_origin"))
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary(81))
    share: Mapped[bytes | None] = mapped_column(LargeBinary(), default=None)
    share_signature: Mapped[bytes | None] = mapped_column(LargeBinary(64), default=None)
    shared_by: Mapped[str | None] = mapped_column(ForeignKey("liaisons.id"), default=None)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PacketStream(Base):
    """One ciphertext stream of a packet: the blob it is stored as (by SHA-256).

    ``content``: the ciphertext itself, for a small stream sent inline with the
    envelope (at most ``app.packets.schemas.MAX_INLINE_STREAM_BYTES``); it is
    then in this row, committed with the packet, and not in the blob store.
    """

    __tablename__ = "packet_streams"

    packet_id: Mapped[str] = mapped_column(ForeignKey("packets.id"), primary_key=True)
    index: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    length: Mapped[int] = mapped_column(BigInteger())
    content: Mapped[bytes | None] = mapped_column(LargeBinary(), default=None)


class PacketReceipt(Base):
    """A recipient's signed receipt, stored as received."""

    __tablename__ = "packet_receipts"

    packet_id: Mapped[str] = mapped_column(ForeignKey("packets.id"), primary_key=True)
    recipient_id: Mapped[str] = mapped_column(ForeignKey("liaisons.id"), primary_key=True)
    key_id: Mapped[str] = mapped_column(ForeignKey("liaison_keys.key_id"))
    receipt: Mapped[bytes] = mapped_column(LargeBinary())
    signature: Mapped[bytes] = mapped_column(LargeBinary(64))
    received: Mapped[datetime] = mapped_column(UTCDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ShareRequest(Base):
    """A holder's request to share a packet onward, and the originator's decision."""

    __tablename__ = "share_requests"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    packet_id: Mapped[str] = mapped_column(ForeignKey("packets.id"), index=True)
    requested_by: Mapped[str] = mapped_column(ForeignKey("liaisons.id"))
    recipient_id: Mapped[str] = mapped_column(ForeignKey("liaisons.id"))
    status: Mapped[ShareRequestStatus] = mapped_column(
        _enum(ShareRequestStatus, "share_request_status"))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
