"""Queries about packets, their keys, streams, receipts and share requests.

The only place that builds packet queries.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import Select, String, and_, bindparam, case, exists, func, select
from sqlalchemy.orm import Session

from app.identity.repository import (
    Eligibility,
    TokenFacts,
    eligibility_of,
    eligibility_query,
    level_in_force,
    token_facts_of,
    token_query,
)
from app.ledger import DriverQuery, insert_at_commit, named_insert
from app.models.auth import AuthToken
from app.models.base import UTCDateTime
from app.models.channel import Channel, ChannelMember
from app.models.packet import (
    KeyOrigin,
    Packet,
    PacketKey,
    PacketReceipt,
    PacketStatus,
    PacketStream,
    ShareRequest,
    ShareRequestStatus,
)
from app.models.sqljson import json_array_of, json_rows


@dataclass(frozen=True, slots=True)
class StreamRef:
    """Where a ciphertext stream of a packet is stored, and its length."""

    index: int
    sha256: str
    length: int


@dataclass(frozen=True)
class AccessFacts:
    """What the clearance gate decides on, read in one query."""

    packet: Packet
    holding: PacketKey | None
    is_member: bool
    level: int | None


@dataclass(frozen=True, slots=True)
class PacketRecord:
    """A packet's columns as a retrieval reads them (a named row, no ORM instance)."""

    id: str
    channel_id: str
    sender_id: str
    sender_key_id: str
    classification: int
    handling: str
    evaluation: str
    case_reference: str | None
    legal_basis: str | None
    created: datetime
    submitted_at: datetime
    in_reply_to: str | None
    urgency: str | None
    due: datetime | None
    header: bytes
    header_sha256: str
    signature: bytes
    status: PacketStatus
    withdrawn_at: datetime | None
    withdrawal_reason: str | None


@dataclass(frozen=True, slots=True)
class HoldingRecord:
    """The wrapped key a caller holds for a packet, as a retrieval reads it."""

    key_id: str
    origin: KeyOrigin
    wrapped_key: bytes
    share: bytes | None
    share_signature: bytes | None
    shared_by: str | None


@dataclass(frozen=True)
class RetrievalFacts:
    """What the clearance gate decides a retrieval on, read with Core in one query."""

    packet: PacketRecord
    holding: HoldingRecord | None
    is_member: bool
    level: int | None


@dataclass(frozen=True)
class PacketContents:
    """What a retrieval hands out besides the packet row: header recipients and streams,
    and whether an addressee answered the packet (read only when it has a due date)."""

    recipients: list[str]
    streams: list[StreamRef]
    answered: bool = False


def _access_query() -> Select[Packet, PacketKey, bool, int | None]:
    liaison = bindparam("liaison_id", type_=String())
    member = exists().where(ChannelMember.channel_id == Packet.channel_id,
                            ChannelMember.liaison_id == liaison)
    level = level_in_force(liaison, bindparam("moment", type_=UTCDateTime()))
    return (
        select(Packet, PacketKey, member.label("is_member"), level.label("level"))
        .outerjoin(PacketKey, and_(PacketKey.packet_id == Packet.id,
                                   PacketKey.liaison_id == liaison))
        .where(Packet.id == bindparam("packet_id", type_=String()))
    )


# Identifiers (ID_PATTERN) hold no space, so a space separates the aggregated
# recipients; the order the database aggregates in is not relied on.
_SEPARATOR = " "
_HEADER_RECIPIENTS = (
    select(func.aggregate_strings(PacketKey.liaison_id, _SEPARATOR))
    .where(PacketKey.packet_id == Packet.id, PacketKey.origin == KeyOrigin.HEADER)
    .correlate(Packet)  # not the caller's packet_keys row the outer query joins
    .scalar_subquery()
)
_STREAM_OBJECTS = (
    select(json_array_of(index=PacketStream.index, sha256=PacketStream.sha256,
                         length=PacketStream.length))
    .where(PacketStream.packet_id == Packet.id)
    .correlate(Packet)
    .scalar_subquery()
)
_REPLY = Packet.__table__.alias("reply")
_ADDRESSEE = PacketKey.__table__.alias("addressee")
# Overdue needs it only for a packet with a due date: no lookup for the others.
_ANSWERED_BY_ADDRESSEE = case((Packet.due.is_(None), None), else_=exists().where(
    _REPLY.c.in_reply_to == Packet.id, _ADDRESSEE.c.packet_id == Packet.id,
    _ADDRESSEE.c.liaison_id == _REPLY.c.sender_id,
    _ADDRESSEE.c.origin == KeyOrigin.HEADER).correlate(Packet))
_ACCESS = _access_query()

_PACKET_FIELDS = tuple(f.name for f in fields(PacketRecord))
_HOLDING_FIELDS = tuple(f.name for f in fields(HoldingRecord))
# Core columns, not entities: no ORM instances, identity map or attribute events
# for what a retrieval only reads. The holding's columns are labelled ``held_*``
# (the token query has a ``key_id`` of its own).
_RECORD_COLUMNS = (*(Packet.__table__.c[name] for name in _PACKET_FIELDS),
                   *(PacketKey.__table__.c[name].label(f"held_{name}")
                     for name in _HOLDING_FIELDS))
_HOLDING_AT = len(_PACKET_FIELDS)
_RECORDS_END = _HOLDING_AT + len(_HOLDING_FIELDS)
_CONTENTS_COLUMNS = (_HEADER_RECIPIENTS.label("recipients"), _STREAM_OBJECTS.label("streams"),
                     _ANSWERED_BY_ADDRESSEE.label("answered"))


def _retrieval_query() -> Select[Any]:
    liaison = bindparam("liaison_id", type_=String())
    member = exists().where(ChannelMember.channel_id == Packet.channel_id,
                            ChannelMember.liaison_id == liaison)
    level = level_in_force(liaison, bindparam("moment", type_=UTCDateTime()))
    return (
        select(*_RECORD_COLUMNS, member.label("is_member"), level.label("level"),
               *_CONTENTS_COLUMNS)
        .outerjoin(PacketKey, and_(PacketKey.packet_id == Packet.id,
                                   PacketKey.liaison_id == liaison))
        .where(Packet.id == bindparam("packet_id", type_=String()))
    )


def _records_at(query: Select[Any]) -> int:
    """Where the record columns start in the rows of ``query`` (checked once, when built)."""
    names = list(query.selected_columns.keys())
    first = names.index("id")
    if names[first:first + _RECORDS_END] != [c.key for c in _RECORD_COLUMNS]:
        raise AssertionError(f"unexpected retrieval columns: {names}")  # pragma: no cover
    return first


_RETRIEVAL = _retrieval_query()
_RETRIEVAL_RECORDS = _records_at(_RETRIEVAL)


def _facts(row: Any) -> AccessFacts:
    return AccessFacts(row.Packet, row.PacketKey, bool(row.is_member), row.level)


def access_facts(session: Session, packet_id: str, liaison_id: str,
                 moment: datetime) -> AccessFacts | None:
    """The packet, the key ``liaison_id`` holds for it, their membership of its channel
    and their clearance level in force at ``moment``; ``None`` for an unknown packet.
    """
    row = session.execute(_ACCESS, {"packet_id": packet_id, "liaison_id": liaison_id,
                                    "moment": moment}).first()
    return None if row is None else _facts(row)


def _retrieval(row: Any, first: int, level: int | None) -> tuple[RetrievalFacts, PacketContents]:
    # By position: a Row's attribute access costs about a microsecond a name.
    records = row[first:first + _RECORDS_END]
    held = records[_HOLDING_AT:]
    holding = None if held[0] is None else HoldingRecord(*held)  # key_id is never NULL
    facts = RetrievalFacts(PacketRecord(*records[:_HOLDING_AT]), holding, bool(row.is_member),
                           level)
    return facts, _contents(row)


def retrieval_facts(session: Session, packet_id: str, liaison_id: str,
                    moment: datetime) -> tuple[RetrievalFacts, PacketContents] | None:
    """What :func:`access_facts` reads (as records), and the packet's header recipients
    and streams, in one query: one round trip instead of three.
    """
    row = session.connection().execute(_RETRIEVAL, {
        "packet_id": packet_id, "liaison_id": liaison_id, "moment": moment}).first()
    return None if row is None else _retrieval(row, _RETRIEVAL_RECORDS, row.level)


def _contents(row: Any) -> PacketContents:
    refs = [StreamRef(int(item["index"]), str(item["sha256"]), int(item["length"]))
            for item in json_rows(row.streams)]
    recipients = sorted(r for r in (row.recipients or "").split(_SEPARATOR) if r)
    return PacketContents(recipients, sorted(refs, key=lambda ref: ref.index),
                          bool(row.answered))


def _retrieval_with_token_query() -> Select[Any]:
    # The caller is the token's liaison: what is read of the packet for it is used
    # only once the token has passed every check (app.auth.service.authenticate).
    # The clearance level in force is the token query's own (one subquery, not two).
    liaison = AuthToken.liaison_id
    member = exists().where(ChannelMember.channel_id == Packet.channel_id,
                            ChannelMember.liaison_id == liaison)
    return (
        token_query()
        .add_columns(*_RECORD_COLUMNS, member.label("is_member"), *_CONTENTS_COLUMNS)
        .outerjoin(Packet, Packet.id == bindparam("packet_id", type_=String()))
        .outerjoin(PacketKey, and_(PacketKey.packet_id == Packet.id,
                                   PacketKey.liaison_id == liaison))
    )


_RETRIEVAL_WITH_TOKEN = _retrieval_with_token_query()
_RETRIEVAL_WITH_TOKEN_RECORDS = _records_at(_RETRIEVAL_WITH_TOKEN)
_RETRIEVAL_WITH_TOKEN_READ = DriverQuery(_RETRIEVAL_WITH_TOKEN)


@dataclass(frozen=True)
class TokenAndRetrieval:
    """A bearer token's facts and, for its liaison, a retrieval's (``None``: no such packet)."""

    token: TokenFacts
    retrieval: tuple[RetrievalFacts, PacketContents] | None


def retrieval_with_token(session: Session, token_id: str, packet_id: str,
                         moment: datetime) -> TokenAndRetrieval | None:
    """The token's facts (``app.identity.repository.token_facts``) and :func:`retrieval_facts`
    for the token's liaison, in one query; ``None`` for an unknown token."""
    row = _RETRIEVAL_WITH_TOKEN_READ.first(session.connection(), {
        "token_id": token_id, "packet_id": packet_id, "moment": moment})
    if row is None:
        return None
    found = (None if row[_RETRIEVAL_WITH_TOKEN_RECORDS] is None  # a packet's id is never NULL
             else _retrieval(row, _RETRIEVAL_WITH_TOKEN_RECORDS, row.clearance_level))
    return TokenAndRetrieval(token_facts_of(row), found)


@dataclass(frozen=True)
class SubmissionFacts:
    """What decides whether a liaison may submit a packet id in a channel to recipients now."""

    packet_exists: bool
    channel_min_level: int | None
    """``None``: no such channel."""
    eligibility: dict[str, Eligibility]
    """By liaison id, the sender's and every known recipient's."""


def _submission_query() -> Select[Any]:
    used = exists().where(Packet.id == bindparam("packet_id", type_=String()))
    min_level = (select(Channel.min_level)
                 .where(Channel.id == bindparam("channel_id", type_=String()))
                 .scalar_subquery())
    return eligibility_query().add_columns(used.label("packet_exists"),
                                           min_level.label("channel_min_level"))


_SUBMISSION = _submission_query()
_SUBMISSION_READ = DriverQuery(_SUBMISSION)


def submission_facts(session: Session, packet_id: str, channel_id: str, sender_id: str,
                     *, recipient_ids: Iterable[str], moment: datetime) -> SubmissionFacts:
    """Whether the packet id is taken, the channel's minimum, and the eligibility facts
    (membership, clearance in force at ``moment``, state, current key) of the sender and
    the recipients, in one query.
    """
    ids = sorted({sender_id, *recipient_ids})
    rows = _SUBMISSION_READ.all(session.connection(), {
        "ids": ids, "packet_id": packet_id, "channel_id": channel_id, "moment": moment})
    # Every row carries the same packet and channel facts; the sender, being
    # authenticated, always has one.
    first = rows[0] if rows else None
    return SubmissionFacts(bool(first.packet_exists) if first else False,
                           first.channel_min_level if first else None,
                           {row.liaison_id: eligibility_of(row) for row in rows})


def get(session: Session, packet_id: str) -> Packet | None:
    """The packet with id ``packet_id``."""
    return session.get(Packet, packet_id)


_PACKET_COLUMNS = tuple(c.name for c in Packet.__table__.columns)
_INSERT_PACKET = named_insert(Packet, _PACKET_COLUMNS)
_INSERT_HOLDINGS = named_insert(
    PacketKey, ("packet_id", "liaison_id", "key_id", "origin", "wrapped_key", "added_at"))
_INSERT_STREAMS = named_insert(PacketStream,
                                ("packet_id", "index", "sha256", "length", "content"))


def store_submitted(session: Session, packet: dict[str, Any], holdings: list[dict[str, Any]],
                    streams: list[dict[str, Any]]) -> None:
    """Insert a new packet row (every ``packets`` column), its header keys and its streams.

    Plain inserts sent with the transaction's ``COMMIT`` (``UnitOfWork.insert_at_commit``):
    a submission reads none of them back, and the unit of work's bookkeeping
    and two more round trips cost more than the rows. An ORM query later in
    the transaction still sees them (they are inserted before it runs).
    """
    insert_at_commit(session, _INSERT_PACKET, [packet])
    insert_at_commit(session, _INSERT_HOLDINGS, holdings)
    insert_at_commit(session, _INSERT_STREAMS, streams)


def holding(session: Session, packet_id: str, liaison_id: str) -> PacketKey | None:
    """The wrapped key ``liaison_id`` holds for the packet, if any."""
    return session.get(PacketKey, (packet_id, liaison_id))


def is_party(session: Session, packet: Packet, liaison_id: str) -> bool:
    """Whether ``liaison_id`` sent the packet or holds a key for it."""
    return packet.sender_id == liaison_id or holding(session, packet.id, liaison_id) is not None


_STREAMS = (select(PacketStream.index.label("position"), PacketStream.sha256,
                   PacketStream.length)
            .where(PacketStream.packet_id == bindparam("packet_id", type_=String()))
            .order_by(PacketStream.index))


def streams(session: Session, packet_id: str) -> list[StreamRef]:
    """The packet's ciphertext streams, in order."""
    rows = session.connection().execute(_STREAMS, {"packet_id": packet_id})
    return [StreamRef(row.position, row.sha256, row.length) for row in rows]


def stream(session: Session, packet_id: str, index: int) -> PacketStream | None:
    """One ciphertext stream of the packet."""
    return session.get(PacketStream, (packet_id, index))


# Built once, run on the session's connection: building a select with an
# expanding IN, and the ORM's execution layer, each cost more than the query.
_RECIPIENTS = (
    select(PacketKey.packet_id, PacketKey.liaison_id)
    .where(PacketKey.packet_id.in_(bindparam("ids", expanding=True)),
           PacketKey.origin == KeyOrigin.HEADER)
    .order_by(PacketKey.liaison_id)
)
_REPLY = Packet.__table__.alias("reply")
_ANSWERED = (
    select(_REPLY.c.in_reply_to).distinct()
    .join(PacketKey, and_(PacketKey.packet_id == _REPLY.c.in_reply_to,
                          PacketKey.liaison_id == _REPLY.c.sender_id,
                          PacketKey.origin == KeyOrigin.HEADER))
    .where(_REPLY.c.in_reply_to.in_(bindparam("ids", expanding=True)))
)


def recipients(session: Session, packet_ids: Iterable[str]) -> dict[str, list[str]]:
    """Header recipients (not share recipients) of each packet, sorted."""
    ids = list(packet_ids)
    found: dict[str, list[str]] = {pid: [] for pid in ids}
    if not ids:
        return found
    for packet_id, liaison_id in session.connection().execute(_RECIPIENTS, {"ids": ids}):
        found[packet_id].append(liaison_id)
    return found


def answered(session: Session, packet_ids: Iterable[str]) -> set[str]:
    """Those of ``packet_ids`` that one of their header recipients replied to."""
    ids = list(packet_ids)
    if not ids:
        return set()
    return set(session.connection().execute(_ANSWERED, {"ids": ids}).scalars().all())


def replies_to(session: Session, packet_ids: Iterable[str]) -> Sequence[Packet]:
    """Packets that answer any of ``packet_ids``."""
    ids = list(packet_ids)
    if not ids:
        return []
    return session.scalars(select(Packet).where(Packet.in_reply_to.in_(ids))).all()


def receipt(session: Session, packet_id: str, recipient_id: str) -> PacketReceipt | None:
    """The receipt ``recipient_id`` gave for the packet, if any."""
    return session.get(PacketReceipt, (packet_id, recipient_id))


def receipts(session: Session, packet_id: str) -> Sequence[PacketReceipt]:
    """Every receipt for the packet, by recipient."""
    return session.scalars(select(PacketReceipt).where(PacketReceipt.packet_id == packet_id)
                           .order_by(PacketReceipt.recipient_id)).all()


def share_request(session: Session, request_id: str) -> ShareRequest | None:
    """A share request by id."""
    return session.get(ShareRequest, request_id)


def share_requests(session: Session, packet_id: str,
                   requested_by: str | None = None) -> Sequence[ShareRequest]:
    """Share requests for a packet (optionally only those of one requester), oldest first."""
    query = select(ShareRequest).where(ShareRequest.packet_id == packet_id)
    if requested_by is not None:
        query = query.where(ShareRequest.requested_by == requested_by)
    return session.scalars(query.order_by(ShareRequest.requested_at, ShareRequest.id)).all()


def open_request(session: Session, packet_id: str, requested_by: str, recipient_id: str,
                 *, status: ShareRequestStatus | None = None) -> ShareRequest | None:
    """A pending or approved request by ``requested_by`` to share the packet with
    ``recipient_id`` (an H2 approval is bound to the holder who asked, and the target)."""
    statuses = [status] if status else [ShareRequestStatus.PENDING, ShareRequestStatus.APPROVED]
    return session.scalars(
        select(ShareRequest).where(ShareRequest.packet_id == packet_id,
                                   ShareRequest.requested_by == requested_by,
                                   ShareRequest.recipient_id == recipient_id,
                                   ShareRequest.status.in_(statuses))
        .order_by(ShareRequest.requested_at).with_for_update()
    ).first()
