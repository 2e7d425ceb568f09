"""Rules for channels: coordinators create them and manage members."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from app.auth.service import Principal
from app.channels import repository as repo
from app.errors import NotFound, RuleRefused
from app.identity import repository as liaisons
from app.ledger import draft, now, record
from app.models.channel import Channel, ChannelKind, ChannelMember
from app.models.identity import Level, Role


class ChannelConflict(RuleRefused):
    """A channel with that id or name exists, or the member is there already."""

    status, code, title = 409, "channel-conflict", "Channel conflict"


class BadMembership(RuleRefused):
    """The membership asked for breaks the channel's shape."""

    status, code, title = 422, "bad-membership", "Membership not allowed"


def _check_bilateral(session: Session, channel: Channel, member_ids: Sequence[str]) -> None:
    if channel.kind != ChannelKind.BILATERAL:
        return
    states = set()
    for liaison_id in member_ids:
        liaison = liaisons.get_liaison(session, liaison_id)
        if liaison is not None:
            states.add(liaison.state_code)
    if len(states) > 2:
        raise BadMembership("a bilateral channel joins liaisons of exactly two states",
                            subject={"type": "channel", "id": channel.id})


def _add(session: Session, by: Principal, channel: Channel, liaison_id: str) -> None:
    liaison = liaisons.get_liaison(session, liaison_id)
    if liaison is None:
        raise NotFound(f"no liaison {liaison_id}")
    if liaison.role != Role.PROSECUTOR:
        raise BadMembership("only prosecutors are channel members",
                            subject={"type": "channel", "id": channel.id})
    if repo.is_member(session, channel.id, liaison_id):
        raise ChannelConflict(f"{liaison_id} is already a member",
                              subject={"type": "channel", "id": channel.id})
    session.add(ChannelMember(channel_id=channel.id, liaison_id=liaison_id,
                              added_by=by.liaison_id, added_at=now()))
    session.flush()


def create(session: Session, by: Principal, channel_id: str, name: str, *, kind: ChannelKind,
           crime_type: str | None, min_level: Level, members: Sequence[str]) -> Channel:
    """Create a channel with its first members; logged."""
    if repo.get(session, channel_id) is not None or repo.by_name(session, name) is not None:
        raise ChannelConflict("a channel with that id or name exists",
                              subject={"type": "channel", "id": channel_id})
    channel = Channel(id=channel_id, name=name, kind=kind, crime_type=crime_type,
                      min_level=int(min_level), created_by=by.liaison_id, created_at=now())
    session.add(channel)
    session.flush()
    for liaison_id in sorted(set(members)):
        _add(session, by, channel, liaison_id)
    _check_bilateral(session, channel, repo.members(session, channel.id))
    record(session, draft(by.actor, "channel.create", {"type": "channel", "id": channel_id},
                          details={"name": name, "kind": kind.value, "crime_type": crime_type,
                                   "min_clearance": min_level.name,
                                   "members": sorted(set(members))}))
    return channel


def add_member(session: Session, by: Principal, channel_id: str, liaison_id: str) -> Channel:
    """Add a member to a channel; logged."""
    channel = repo.get(session, channel_id)
    if channel is None:
        raise NotFound(f"no channel {channel_id}", subject={"type": "channel", "id": channel_id})
    _add(session, by, channel, liaison_id)
    _check_bilateral(session, channel, repo.members(session, channel.id))
    record(session, draft(by.actor, "channel.add_member", {"type": "channel", "id": channel_id},
                          details={"liaison": liaison_id}))
    return channel


def remove_member(session: Session, by: Principal, channel_id: str,
                  liaison_id: str) -> Channel:
    """Take a member out of a channel; logged. What was sent to them stays theirs.

    From then on they are refused the channel's packets (membership is
    checked on every access, DESIGN invariant 3) and cannot be chosen as a
    recipient; a member-less channel is allowed (it can be added to again).
    """
    channel = repo.get(session, channel_id)
    if channel is None:
        raise NotFound(f"no channel {channel_id}", subject={"type": "channel", "id": channel_id})
    if not repo.is_member(session, channel_id, liaison_id):
        raise NotFound(f"{liaison_id} is not a member of {channel_id}",
                       subject={"type": "channel", "id": channel_id})
    repo.remove(session, channel_id, liaison_id)
    record(session, draft(by.actor, "channel.remove_member", {"type": "channel", "id": channel_id},
                          details={"liaison": liaison_id}))
    return channel


def listing(session: Session, by: Principal) -> Sequence[Channel]:
    """Channels the caller belongs to (coordinators: all); logged."""
    record(session, draft(by.actor, "channel.list", {"type": "channels", "id": "*"}))
    member = None if by.role == Role.COORDINATOR else by.liaison_id
    return repo.listing(session, member)
