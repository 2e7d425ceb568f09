"""Queries about channels and members (the only place that builds them)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.models.channel import Channel, ChannelMember


def get(session: Session, channel_id: str) -> Channel | None:
    """The channel with id ``channel_id``."""
    return session.get(Channel, channel_id)


def by_name(session: Session, name: str) -> Channel | None:
    """The channel named ``name``."""
    return session.scalars(select(Channel).where(Channel.name == name)).first()


def members(session: Session, channel_id: str) -> list[str]:
    """Liaison ids of the channel's members, sorted."""
    return list(session.scalars(
        select(ChannelMember.liaison_id).where(ChannelMember.channel_id == channel_id)
        .order_by(ChannelMember.liaison_id)
    ).all())


def is_member(session: Session, channel_id: str, liaison_id: str) -> bool:
    """Whether ``liaison_id`` is a member of the channel."""
    return session.get(ChannelMember, (channel_id, liaison_id)) is not None


def remove(session: Session, channel_id: str, liaison_id: str) -> None:
    """Take ``liaison_id`` out of the channel (no-op if not a member)."""
    session.execute(delete(ChannelMember).where(ChannelMember.channel_id == channel_id,
                                                ChannelMember.liaison_id == liaison_id))
    session.flush()


def listing(session: Session, member: str | None) -> Sequence[Channel]:
    """Every channel, or those ``member`` belongs to, by name."""
    query = select(Channel).order_by(Channel.name)
    if member is not None:
        query = query.join(ChannelMember).where(ChannelMember.liaison_id == member)
    return session.scalars(query).all()
