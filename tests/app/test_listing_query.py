"""The listing's one Core statement returns what the ORM query it replaced returned.

``app.packets.listing`` binds a listing's optional filters into one of a few
statements built once (docs/adr/0031), and reads each packet's header
recipients and whether it was answered in the same statement. The naive
reference below is the ORM query and the two follow-up queries of the
listing before it; for any caller, box, combination of filters, cursor and
limit, over packets with ties in time, shares, replies, withdrawals and
packets the caller may not see, both the plain statement and the one that
reads the token with the page return the same packets, in the same order,
with the same recipients and the same ``answered``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import astuple, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import and_, exists, or_, select
from sqlalchemy.orm import Session, defer

from app.identity import repository as liaisons
from app.ledger.engine import make_engine
from app.models.channel import ChannelMember
from app.models.identity import Level, LiaisonKey
from app.models.packet import KeyOrigin, Packet, PacketKey, PacketStatus
from app.packets import listing as pages
from app.packets import repository as repo
from app.packets.listing import PacketFilter
from crypto import uuid7
from tests.app.conftest import Person, World
from tests.app.test_packets_support import exchange, make_channel

BASE = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
MOMENTS = [BASE + timedelta(minutes=m) for m in range(8)]  # few: ties in submitted_at
CASES = [None, "case-a", "case-b"]


def reference_listing(session: Session, liaison_id: str, level: int, wanted: PacketFilter,
                      *, after: tuple[datetime, str] | None, limit: int) -> list[tuple[Any, ...]]:
    """The ORM listing as it was, with its recipients and answered queries."""
    query = select(Packet).options(defer(Packet.header, raiseload=True),
                                   defer(Packet.signature, raiseload=True))
    if wanted.box == "sent":
        query = query.where(Packet.sender_id == liaison_id)
    else:
        query = query.where(exists().where(PacketKey.packet_id == Packet.id,
                                           PacketKey.liaison_id == liaison_id))
    query = query.where(Packet.classification <= level,
                        exists().where(ChannelMember.channel_id == Packet.channel_id,
                                       ChannelMember.liaison_id == liaison_id))
    if wanted.channel_id is not None:
        query = query.where(Packet.channel_id == wanted.channel_id)
    if wanted.case_reference is not None:
        query = query.where(Packet.case_reference == wanted.case_reference)
    if wanted.since is not None:
        query = query.where(Packet.submitted_at >= wanted.since)
    if wanted.until is not None:
        query = query.where(Packet.submitted_at < wanted.until)
    if wanted.status is not None:
        query = query.where(Packet.status == wanted.status)
    if after is not None:
        at, last_id = after
        query = query.where(or_(Packet.submitted_at < at,
                                and_(Packet.submitted_at == at, Packet.id < last_id)))
    query = query.order_by(Packet.submitted_at.desc(), Packet.id.desc()).limit(limit)
    found = session.scalars(query).all()
    recipients = repo.recipients(session, [p.id for p in found])
    answered = repo.answered(session, [p.id for p in found if p.due is not None])
    return [(p.id, p.channel_id, p.sender_id, p.classification, p.handling, p.evaluation,
             p.case_reference, p.legal_basis, p.created, p.submitted_at, p.status,
             p.in_reply_to, p.urgency, p.due, p.withdrawn_at, p.withdrawal_reason,
             recipients[p.id], p.id in answered) for p in found]


@dataclass(frozen=True)
class Folks:
    """The people of the data set, with their clearance levels."""

    people: dict[str, Person]
    levels: dict[str, int]
    ids: list[str]
    cursors: list[tuple[datetime, str]]
    """Each packet's (``submitted_at``, id): where a page can end."""


def _populate(world: World) -> Folks:
    """Forty packets in two channels whose members differ, drawn from a fixed seed."""
    ex = exchange(world)  # alice, bob, carol (SECRET) in "ch"
    dave = world.liaison("dave", "MX", level="CONFIDENTIAL")
    make_channel(world, "ch2", [ex.alice, ex.bob, dave])
    people = {p.id: p for p in (ex.alice, ex.bob, ex.carol, dave)}
    members = {"ch": ["alice", "bob", "carol"], "ch2": ["alice", "bob", "dave"]}
    engine = make_engine(world.settings.resolved_database_url())
    rng = random.Random(21)
    ids: list[str] = []
    cursors: list[tuple[datetime, str]] = []
    try:
        with Session(engine) as session:
            keys = {k.liaison_id: k.key_id for k in session.scalars(select(LiaisonKey))}
            for _ in range(40):
                channel = rng.choice(["ch", "ch2"])
                sender = rng.choice(members[channel])
                at = rng.choice(MOMENTS)
                withdrawn = rng.random() < 0.2
                packet_id = uuid7()
                session.add(Packet(
                    id=packet_id, channel_id=channel, sender_id=sender,
                    sender_key_id=keys[sender], classification=rng.randint(1, 3),
                    handling="H1", evaluation="A1", case_reference=rng.choice(CASES),
                    legal_basis=rng.choice([None, "MLAT"]), created=at, submitted_at=at,
                    in_reply_to=rng.choice([None, None, *ids]), urgency=rng.choice([None, "high"]),
                    due=rng.choice([None, BASE - timedelta(days=1), BASE + timedelta(days=1)]),
                    header=b"header", header_sha256="0" * 64, signature=bytes(64),
                    status=PacketStatus.WITHDRAWN if withdrawn else PacketStatus.ACTIVE,
                    withdrawn_at=at if withdrawn else None,
                    withdrawal_reason="superseded" if withdrawn else None))
                session.flush()
                others = [p for p in people if p != sender]  # a recipient may not be a member
                for holder in rng.sample(others, rng.randint(1, len(others))):
                    origin = KeyOrigin.SHARE if rng.random() < 0.2 else KeyOrigin.HEADER
                    session.add(PacketKey(packet_id=packet_id, liaison_id=holder,
                                          key_id=keys[holder], origin=origin,
                                          wrapped_key=bytes(81), added_at=at))
                ids.append(packet_id)
                cursors.append((at, packet_id))
            session.commit()
    finally:
        engine.dispose()
    levels = {"alice": Level.SECRET, "bob": Level.SECRET, "carol": Level.SECRET,
              "dave": Level.CONFIDENTIAL}
    return Folks(people, {k: int(v) for k, v in levels.items()}, ids, cursors)


def _rarely(values: Sequence[Any]) -> st.SearchStrategy[Any]:
    """``None`` (no such filter) more often than not, else one of ``values``."""
    return st.sampled_from([None, None]) | st.sampled_from([None, *values])


def _as_tuples(found: Sequence[pages.ListedPacket]) -> list[tuple[Any, ...]]:
    return [astuple(p) for p in found]


def test_the_listing_statement_returns_what_the_orm_query_returned(world: World) -> None:
    folks = _populate(world)
    engine = make_engine(world.settings.resolved_database_url())

    @settings(suppress_health_check=[HealthCheck.function_scoped_fixture,
                                     HealthCheck.too_slow], deadline=None)
    @given(caller=st.sampled_from(sorted(folks.people)), box=st.sampled_from(["inbox", "sent"]),
           channel=_rarely(["ch", "ch2", "elsewhere"]),
           case=_rarely(["case-a", "case-b", "case-z"]),
           since=_rarely(MOMENTS), until=_rarely(MOMENTS), status=_rarely(list(PacketStatus)),
           after=st.none() | st.sampled_from(folks.cursors)
           | st.tuples(st.sampled_from(MOMENTS), st.sampled_from(folks.ids) | st.just(uuid7())),
           limit=st.integers(min_value=1, max_value=45))
    def check(caller: str, box: str, channel: str | None, case: str | None,
              since: datetime | None, until: datetime | None, status: PacketStatus | None,
              after: tuple[datetime, str] | None, limit: int) -> None:
        wanted = PacketFilter(box, channel, case, since, until, status)
        level = folks.levels[caller]
        token = folks.people[caller].token
        assert token is not None
        with Session(engine) as session:
            moment = datetime.now(UTC)
            assert liaisons.clearance_in_force(session, caller, moment) is not None
            expected = reference_listing(session, caller, level, wanted, after=after,
                                         limit=limit)
            plain = pages.listing(session, caller, level, wanted, after=after, limit=limit)
            folded = pages.listing_with_token(session, token.split(".")[1], moment, wanted,
                                              after=after, limit=limit)
        assert _as_tuples(plain) == expected
        seen.append(len(expected))
        if expected:  # the next page, after this one's last packet (as the API's cursor)
            last = (expected[-1][9], expected[-1][0])
            with Session(engine) as session:
                following = reference_listing(session, caller, level, wanted, after=last,
                                              limit=limit)
                assert _as_tuples(pages.listing(session, caller, level, wanted, after=last,
                                                limit=limit)) == following
        assert folded is not None
        assert folded.token.liaison_id == caller
        assert _as_tuples(folded.page) == expected

    seen: list[int] = []
    try:
        check()
    finally:
        engine.dispose()
    assert any(seen), "every page drawn was empty: the data set tests nothing"


def test_an_unknown_token_reads_nothing(world: World) -> None:
    engine = make_engine(world.settings.resolved_database_url())
    try:
        with Session(engine) as session:
            assert pages.listing_with_token(session, "no-such-token", datetime.now(UTC),
                                            PacketFilter("inbox"), after=None, limit=5) is None
    finally:
        engine.dispose()
