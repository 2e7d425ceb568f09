"""Channels (bilateral, multilateral, specialized) and their members."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Enum, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime


class ChannelKind(enum.StrEnum):
    """How a channel is shaped."""

    BILATERAL = "bilateral"
    MULTILATERAL = "multilateral"
    SPECIALIZED = "specialized"


class Channel(Base):
    """A clearance-gated channel through which packets move."""

    __tablename__ = "channels"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[ChannelKind] = mapped_column(
        Enum(ChannelKind, name="channel_kind", native_enum=False, length=16,
             values_callable=lambda e: [m.value for m in e], validate_strings=True)
    )
    crime_type: Mapped[str | None] = mapped_column(String(100), default=None)
    min_level: Mapped[int] = mapped_column()
    created_by: Mapped[str] = mapped_column(ForeignKey("liaisons.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ChannelMember(Base):
    """Membership of a liaison in a channel."""

    __tablename__ = "channel_members"

    channel_id: Mapped[str] = mapped_column(ForeignKey("channels.id"), primary_key=True)
    liaison_id: Mapped[str] = mapped_column(ForeignKey("liaisons.id"), primary_key=True, index=True)
    added_by: Mapped[str] = mapped_column(ForeignKey("liaisons.id"))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime())
