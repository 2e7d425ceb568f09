"""``/v1/channels``: create, add and remove members, list."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy.orm import Session

from app.auth.dependencies import CoordinatorDep, PrincipalDep
from app.channels import repository as repo
from app.channels import service
from app.channels.schemas import ChannelCreate, ChannelRead, MemberAdd
from app.clearances.schemas import level_name
from app.ledger import SessionDep, UnitOfWorkRoute
from app.models.channel import Channel
from app.models.identity import Level

router = APIRouter(prefix="/v1/channels", tags=["channels"], route_class=UnitOfWorkRoute)


def channel_read(session: Session, channel: Channel) -> ChannelRead:
    """The API form of a channel."""
    return ChannelRead(
        id=channel.id, name=channel.name, kind=channel.kind, crime_type=channel.crime_type,
        min_clearance=level_name(channel.min_level), members=repo.members(session, channel.id),
        created_by=channel.created_by, created_at=channel.created_at,
    )


@router.post("", status_code=201, name="channel.create")
def create_channel(body: ChannelCreate, session: SessionDep, by: CoordinatorDep) -> ChannelRead:
    """Create a channel (coordinators)."""
    channel = service.create(session, by, body.id, body.name, kind=body.kind,
                             crime_type=body.crime_type,
                             min_level=Level[body.min_clearance], members=body.members)
    return channel_read(session, channel)


@router.post("/{channel_id}/members", status_code=201, name="channel.add_member")
def add_member(channel_id: str, body: MemberAdd, session: SessionDep,
               by: CoordinatorDep) -> ChannelRead:
    """Add a prosecutor to a channel (coordinators)."""
    return channel_read(session, service.add_member(session, by, channel_id, body.liaison_id))


@router.delete("/{channel_id}/members/{liaison_id}", name="channel.remove_member")
def remove_member(channel_id: str, liaison_id: str, session: SessionDep,
                  by: CoordinatorDep) -> ChannelRead:
    """Take a member out of a channel (coordinators); the channel as it is now."""
    return channel_read(session, service.remove_member(session, by, channel_id, liaison_id))


@router.get("", name="channel.list")
def list_channels(session: SessionDep, by: PrincipalDep) -> list[ChannelRead]:
    """Channels the caller belongs to (coordinators see all)."""
    return [channel_read(session, c) for c in service.listing(session, by)]
