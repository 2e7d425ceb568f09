"""The packet listing's query (part of the packets repository: the only place that builds it).

A page of the caller's inbox or sent box is read by one statement: the
packets' metadata columns (never the header or signature), each packet's
header recipients aggregated, and whether an addressee answered it. With a
bearer token the same statement also reads the token's facts
(``app.identity.repository.token_query``) and the page is the token
liaison's: one round trip for authentication and the listing
(docs/adr/0031). What is read of the page is used only once the token has
passed every check (``app.auth.service.authenticate``).

Rows are read with Core (named column tuples; no ORM instances, no identity
map), and each statement is built once per shape: which optional filters a
request uses (at most 2 boxes x 2^6 shapes), so that its cache key is
computed once and the filters' values are bound, never inlined. The page's
``LIMIT`` alone is written into the statement's text (an ``int``, checked by
``app.ledger.sqlread``), so that PostgreSQL plans the prepared listing once
per connection instead of at every request (docs/adr/0043).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Integer,
    Select,
    String,
    Subquery,
    and_,
    bindparam,
    case,
    exists,
    func,
    or_,
    select,
    true,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from app.identity.repository import TokenFacts, level_in_force, token_facts_of, token_query
from app.ledger import DriverQuery
from app.models.auth import AuthToken
from app.models.base import UTCDateTime
from app.models.channel import ChannelMember
from app.models.packet import KeyOrigin, Packet, PacketKey, PacketStatus


@dataclass(frozen=True)
class PacketFilter:
    """What a listing asks for."""

    box: str
    channel_id: str | None = None
    case_reference: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    status: PacketStatus | None = None


@dataclass(frozen=True, slots=True)
class ListedPacket:
    """A packet as a listing shows it: metadata, header recipients, whether answered."""

    id: str
    channel_id: str
    sender_id: str
    classification: int
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
    withdrawn_at: datetime | None
    withdrawal_reason: str | None
    recipients: list[str]
    """Header recipients (not share recipients), sorted."""
    answered: bool
    """Whether one of its header recipients replied to it (read for a packet with a due date)."""


_METADATA = tuple(f.name for f in fields(ListedPacket)[:-2])
# Identifiers (ID_PATTERN) hold no space, so a space separates the aggregated
# recipients; the order the database aggregates in is not relied on.
_SEPARATOR = " "


def _recipients_of(packet_id: ColumnElement[str]) -> ColumnElement[str | None]:
    return (select(func.aggregate_strings(PacketKey.liaison_id, _SEPARATOR))
            .where(PacketKey.packet_id == packet_id, PacketKey.origin == KeyOrigin.HEADER)
            .scalar_subquery())


def _answered(packet_id: ColumnElement[str], due: ColumnElement[Any]) -> ColumnElement[Any]:
    # Overdue needs it only for a packet with a due date: no lookup for the others.
    reply = Packet.__table__.alias("reply")
    by_addressee = exists().where(
        reply.c.in_reply_to == packet_id, PacketKey.packet_id == packet_id,
        PacketKey.liaison_id == reply.c.sender_id, PacketKey.origin == KeyOrigin.HEADER)
    return case((due.is_(None), None), else_=by_addressee)


_FILTERS = ("channel_id", "case_reference", "since", "until", "status", "after")


def _page(box: str, present: frozenset[str], liaison: ColumnElement[str],
          level: ColumnElement[Any]) -> Subquery:
    """The page's packets (metadata columns), newest first, as a subquery."""
    packets = Packet.__table__
    owned = (packets.c.sender_id == liaison if box == "sent" else
             exists().where(PacketKey.packet_id == packets.c.id,
                            PacketKey.liaison_id == liaison))
    # Visible now: the caller is still a member of the channel and cleared for the packet.
    where = [owned, packets.c.classification <= level,
             exists().where(ChannelMember.channel_id == packets.c.channel_id,
                            ChannelMember.liaison_id == liaison)]
    bound: dict[str, ColumnElement[bool]] = {
        "channel_id": packets.c.channel_id == bindparam("channel_id", type_=String()),
        "case_reference": packets.c.case_reference == bindparam("case_reference",
                                                                type_=String()),
        "since": packets.c.submitted_at >= bindparam("since", type_=UTCDateTime()),
        "until": packets.c.submitted_at < bindparam("until", type_=UTCDateTime()),
        "status": packets.c.status == bindparam("status", type_=packets.c.status.type),
        "after": or_(packets.c.submitted_at < bindparam("after_at", type_=UTCDateTime()),
                     and_(packets.c.submitted_at == bindparam("after_at", type_=UTCDateTime()),
                          packets.c.id < bindparam("after_id", type_=String()))),
    }
    where += [bound[name] for name in _FILTERS if name in present]
    return (select(*(packets.c[name] for name in _METADATA)).where(*where)
            .order_by(packets.c.submitted_at.desc(), packets.c.id.desc())
            .limit(bindparam("limit", type_=Integer(), literal_execute=True)).subquery("page"))


@dataclass(frozen=True)
class _Statement:
    """A listing statement and where its page's columns start in a row.

    The metadata columns, then ``recipients`` and ``answered``, end each row; they
    are read by position: a Row's attribute access costs about a microsecond a
    name, and a page has 50 rows of 18 columns.
    """

    query: Select[Any]
    first: int

    @functools.cached_property
    def read(self) -> DriverQuery:
        """The query, run on the DB-API cursor (``app.ledger.sqlread``)."""
        return DriverQuery(self.query)

    def listed(self, row: Any) -> ListedPacket:
        """The packet in ``row``."""
        values: list[Any] = list(row[self.first:])
        values[-2:] = _split(values[-2]), bool(values[-1])
        return ListedPacket(*values)


def _with_extras(query: Select[Any], page: Subquery) -> _Statement:
    first = len(query.selected_columns)
    query = (query.add_columns(*(page.c[name] for name in _METADATA),
                               _recipients_of(page.c.id).label("recipients"),
                               _answered(page.c.id, page.c.due).label("answered"))
             .order_by(page.c.submitted_at.desc(), page.c.id.desc()))
    names = list(query.selected_columns.keys())[first:]
    if names != [*_METADATA, "recipients", "answered"]:  # pragma: no cover - a build error
        raise AssertionError(f"unexpected listing columns: {names}")
    return _Statement(query, first)


@functools.cache
def _listing_statement(box: str, present: frozenset[str]) -> _Statement:
    page = _page(box, present, bindparam("liaison_id", type_=String()),
                 bindparam("level", type_=Integer()))
    built = _with_extras(select(), page)
    return _Statement(built.query.select_from(page), built.first)


# The token's liaison for the page, read by a subquery of its own (not correlated
# with the token row of the outer query, so each database evaluates it once).
_CALLER = AuthToken.__table__.alias("caller")
_CALLER_ID = (select(_CALLER.c.liaison_id)
              .where(_CALLER.c.id == bindparam("token_id", type_=String()))
              .scalar_subquery())


@functools.cache
def _listing_with_token_statement(box: str, present: frozenset[str]) -> _Statement:
    # The level in force is the token query's rule at the same moment.
    level = level_in_force(_CALLER_ID, bindparam("moment", type_=UTCDateTime()))
    page = _page(box, present, _CALLER_ID, level)
    built = _with_extras(token_query(), page)
    return _Statement(built.query.outerjoin(page, true()), built.first)


def _parameters(wanted: PacketFilter, after: tuple[datetime, str] | None,
                limit: int) -> tuple[frozenset[str], dict[str, Any]]:
    values: dict[str, Any] = {"channel_id": wanted.channel_id,
                              "case_reference": wanted.case_reference, "since": wanted.since,
                              "until": wanted.until, "status": wanted.status, "limit": limit}
    values = {k: v for k, v in values.items() if v is not None}
    present = set(values) - {"limit"}
    if after is not None:
        values["after_at"], values["after_id"] = after
        present.add("after")
    return frozenset(present), values


def _split(recipients: str | None) -> list[str]:
    return sorted(r for r in (recipients or "").split(_SEPARATOR) if r)


def listing(session: Session, liaison_id: str, level: int, wanted: PacketFilter,
            *, after: tuple[datetime, str] | None, limit: int) -> list[ListedPacket]:
    """A page of packets in the caller's box, newest first, that they may see now.

    Visible now: the caller is still a member of the packet's channel and
    their clearance in force (``level``) covers its classification. ``after``:
    the cursor (``submitted_at``, id) of the last packet of the previous page.
    """
    present, values = _parameters(wanted, after, limit)
    statement = _listing_statement(wanted.box, present)
    rows = statement.read.all(session.connection(),
                              {**values, "liaison_id": liaison_id, "level": level})
    return [statement.listed(row) for row in rows]


@dataclass(frozen=True)
class TokenAndListing:
    """A bearer token's facts and, for its liaison, a page of :func:`listing`."""

    token: TokenFacts
    page: list[ListedPacket]


def listing_with_token(session: Session, token_id: str, moment: datetime,
                       wanted: PacketFilter, *, after: tuple[datetime, str] | None,
                       limit: int) -> TokenAndListing | None:
    """The token's facts (``app.identity.repository.token_facts`` at ``moment``) and
    :func:`listing` for the token's liaison at the level in force at ``moment``, in one
    query; ``None`` for an unknown token."""
    present, values = _parameters(wanted, after, limit)
    statement = _listing_with_token_statement(wanted.box, present)
    rows = statement.read.all(session.connection(),
                              {**values, "token_id": token_id, "moment": moment})
    if not rows:
        return None
    # One row per packet, each with the token's facts; one row of NULLs for an empty page
    # (a packet's id is never NULL).
    first = statement.first
    return TokenAndListing(token_facts_of(rows[0]),
                           [statement.listed(row) for row in rows if row[first] is not None])
