"""Hot reads on the DB-API cursor give what SQLAlchemy's execution gives (issue 21).

``app.ledger.sqlread.DriverQuery`` runs the token, retrieval and listing reads of the
hot routes without SQLAlchemy's execution layer; its rows must hold the very
values ``Connection.execute`` returns for them (types converted alike: aware
datetimes, enums, booleans, bytes), on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    Column,
    Enum,
    Integer,
    LargeBinary,
    MetaData,
    Select,
    String,
    Table,
    bindparam,
    select,
)

from app.identity import repository as identity
from app.ledger import named_insert, sqlread
from app.ledger.engine import make_engine
from app.ledger.sqlread import DriverQuery, execute_many
from app.models.base import UTCDateTime
from app.models.identity import Liaison, Role
from app.models.packet import KeyOrigin, PacketStatus
from app.packets import listing
from app.packets import repository as packets
from tests.app.conftest import World
from tests.app.test_packets_support import exchange
from tests.app.test_retrieval_fold import _statements

FIXTURE_OK = settings(suppress_health_check=[HealthCheck.function_scoped_fixture],
                      deadline=None, max_examples=25)


def _both(world: World, stmt: Select[Any], values: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    """``stmt``'s rows through SQLAlchemy, then through DriverQuery, in one transaction."""
    with world.client.app.state.engine.connect() as conn:  # type: ignore[attr-defined]
        expected = [tuple(row) for row in conn.execute(stmt, values).all()]
        got = DriverQuery(stmt).all(conn, values)
    return expected, got


def _token_id(token: str | None) -> str:
    assert token is not None
    return token.split(".")[1]


@pytest.fixture
def sent(world: World) -> tuple[World, list[str], list[str]]:
    """An exchange with packets (one withdrawn): the world, the packet ids, the token ids."""
    ex = exchange(world)
    ids = [ex.sent()[1] for _ in range(3)]
    withdrawn = world.client.post(f"/v1/packets/{ids[0]}/withdraw", headers=ex.alice.auth,
                                  json={"reason": "sent in error"})
    assert withdrawn.status_code == 200, withdrawn.text
    tokens = [_token_id(p.token) for p in (ex.alice, ex.bob, ex.carol)]
    return world, ids, tokens


MOMENTS = st.sampled_from([timedelta(0), timedelta(days=-400), timedelta(days=400)])


@FIXTURE_OK
@given(which=st.integers(0, 3), packet=st.integers(0, 3), shift=MOMENTS)
def test_the_token_and_retrieval_reads_match_sqlalchemys(
        sent: tuple[World, list[str], list[str]], which: int, packet: int,
        shift: timedelta) -> None:
    world, ids, tokens = sent
    token = (tokens + ["no-such-token"])[which]
    packet_id = (ids + ["no-such-packet"])[packet]
    moment = datetime.now(UTC) + shift
    for stmt, values in [
        (identity.token_query(), {"token_id": token, "moment": moment}),
        (packets._RETRIEVAL_WITH_TOKEN,
         {"token_id": token, "packet_id": packet_id, "moment": moment}),
    ]:
        expected, got = _both(world, stmt, values)
        assert got == expected
        for row in got:  # the types too: 1 == True and naive == aware would hide a change
            assert [type(v) for v in row] == [type(v) for v in expected[0]]


@FIXTURE_OK
@given(which=st.integers(0, 3), box=st.sampled_from(["inbox", "sent"]),
       channel=st.sampled_from([None, "ch", "other"]),
       status=st.sampled_from([None, *PacketStatus]),
       since=st.sampled_from([None, timedelta(days=-1), timedelta(days=1)]),
       limit=st.integers(1, 4), after=st.booleans())
def test_the_listing_reads_match_sqlalchemys(
        sent: tuple[World, list[str], list[str]], which: int, box: str,
        channel: str | None, status: PacketStatus | None, since: timedelta | None,
        limit: int, after: bool) -> None:
    world, _, tokens = sent
    token = (tokens + ["no-such-token"])[which]
    now = datetime.now(UTC)
    wanted = listing.PacketFilter(box, channel, None, None if since is None else now + since,
                                  None, status)
    cursor = (now, "zzzz") if after else None
    present, values = listing._parameters(wanted, cursor, limit)
    statement = listing._listing_with_token_statement(box, present)
    expected, got = _both(world, statement.query,
                          {**values, "token_id": token, "moment": now})
    assert got == expected
    plain = listing._listing_statement(box, present)
    expected, got = _both(world, plain.query, {**values, "liaison_id": "bob", "level": 3})
    assert got == expected


def test_a_row_is_read_by_position_and_by_name(world: World) -> None:
    stmt = select(Liaison.id, Liaison.role).where(Liaison.id == bindparam("id", type_=String()))
    with world.client.app.state.engine.connect() as conn:  # type: ignore[attr-defined]
        row = DriverQuery(stmt).first(conn, {"id": "coord"})
        assert DriverQuery(stmt).first(conn, {"id": "nobody"}) is None
    assert row is not None
    assert row[0] == row.id == "coord"
    assert row.role is Role.COORDINATOR


def test_constants_of_the_statement_keep_their_values(world: World) -> None:
    """A constant the statement binds itself (an enum member) is converted as SQLAlchemy
    converts it; the caller gives only the parameters left without a value."""
    stmt = (select(Liaison.id).where(Liaison.role == Role.COORDINATOR)
            .where(Liaison.id != bindparam("not_id", type_=String())))
    expected, got = _both(world, stmt, {"not_id": "x"})
    assert got == expected == [("coord",)]
    with world.client.app.state.engine.connect() as conn:  # type: ignore[attr-defined]
        with pytest.raises(KeyError):
            DriverQuery(stmt).all(conn, {})


@FIXTURE_OK
@given(ids=st.lists(st.sampled_from(["coord", "alice", "bob", "carol", "nobody"]), max_size=4),
       other=st.sampled_from(["ch", "other"]))
def test_an_expanding_parameter_takes_a_list_of_any_length(
        sent: tuple[World, list[str], list[str]], ids: list[str], other: str) -> None:
    """The submission's read (an ``IN`` over the sender and recipients) matches
    SQLAlchemy's for every length, each length compiled once."""
    world, ids_sent, _ = sent
    values = {"ids": ids, "packet_id": ids_sent[0], "channel_id": other,
              "moment": datetime.now(UTC)}
    expected, got = _both(world, packets._SUBMISSION, values)
    assert sorted(got) == sorted(expected)
    stmt = select(Liaison.id).where(Liaison.id.in_(bindparam("ids", expanding=True)))
    expected, got = _both(world, stmt, {"ids": ids})
    assert sorted(got) == sorted(expected)


_PAGE = (select(Liaison.id).order_by(Liaison.id)
         .limit(bindparam("limit", type_=Integer(), literal_execute=True)))


@FIXTURE_OK
@given(limits=st.lists(st.integers(0, 2**31 - 1), min_size=1, max_size=30))
def test_a_literal_parameter_is_written_into_the_statement_per_value(
        world: World, limits: list[int]) -> None:
    """A listing's ``LIMIT``: the rows match SQLAlchemy's for any value, the value is in
    the statement's text (PostgreSQL plans knowing it), and a statement keeps at most
    ``MAX_LITERAL_PLANS`` compiled forms however many values it is given."""
    query = DriverQuery(_PAGE)
    engine = world.client.app.state.engine  # type: ignore[attr-defined]
    with _statements(world) as seen, engine.connect() as conn:
        for limit in limits:
            expected = [tuple(row) for row in conn.execute(_PAGE, {"limit": limit})]
            seen.clear()
            assert query.all(conn, {"limit": limit}) == expected
            assert re.search(rf"\bLIMIT {limit}\b", seen[0]), seen[0]
    assert len(query._plans) <= sqlread.MAX_LITERAL_PLANS


@pytest.mark.parametrize("value", [True, "5", "5; DROP TABLE liaisons", 5.0, None, [5]])
def test_a_literal_parameter_takes_only_an_int(world: World, value: Any) -> None:
    """Only an ``int`` is ever written into SQL: anything else is refused before the
    statement is compiled or run."""
    engine = world.client.app.state.engine  # type: ignore[attr-defined]
    query = DriverQuery(_PAGE)
    with engine.connect() as conn:
        with pytest.raises(TypeError, match="literal parameter"):
            query.all(conn, {"limit": value})
        assert query._plans == {}
        assert query.all(conn, {"limit": 1}) == [("coord",)]


def test_a_literal_parameter_must_be_an_integer_of_a_select(world: World) -> None:
    named = select(Liaison.id).where(
        Liaison.id == bindparam("id", type_=String(), literal_execute=True))
    engine = world.client.app.state.engine  # type: ignore[attr-defined]
    with engine.connect() as conn, pytest.raises(TypeError, match="cannot bind"):
        DriverQuery(named).all(conn, {"id": "coord"})


def test_statement_listeners_are_told(world: World) -> None:
    engine = world.client.app.state.engine  # type: ignore[attr-defined]
    stmt = select(Liaison.id).where(Liaison.id == bindparam("id", type_=String()))
    with _statements(world) as seen, engine.connect() as conn:
        DriverQuery(stmt).all(conn, {"id": "coord"})
    assert len(seen) == 1
    assert "FROM liaisons" in seen[0]


_SCRATCH = MetaData()
_KINDS = Table("sqlread_scratch", _SCRATCH, Column("n", Integer, primary_key=True),
               Column("way", String(8), primary_key=True), Column("origin", Enum(KeyOrigin)),
               Column("blob", LargeBinary), Column("at", UTCDateTime()))
_DATES = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                      timezones=st.just(UTC))


@FIXTURE_OK
@given(rows=st.lists(st.tuples(st.sampled_from(list(KeyOrigin)), st.binary(max_size=40),
                               st.one_of(st.none(), _DATES)), min_size=1, max_size=4))
def test_rows_inserted_on_the_cursor_read_back_as_through_sqlalchemy(
        world: World, rows: list[tuple[KeyOrigin, bytes, datetime | None]]) -> None:
    """The queued inserts of a unit of work (``execute_many``) convert values as
    SQLAlchemy's execution does: the same rows, inserted both ways, read back equal."""
    stmt = named_insert(_KINDS, ("n", "way", "origin", "blob", "at"))

    def values(way: str) -> list[dict[str, Any]]:
        return [{"n": n, "way": way, "origin": origin, "blob": blob, "at": at}
                for n, (origin, blob, at) in enumerate(rows)]

    # An engine of its own: the scratch table (and PostgreSQL's enum type) is created
    # in a transaction that rolls back, which the serving engine never does
    # (``make_engine(keep_prepared=True)``, docs/adr/0043).
    engine = make_engine(world.settings.resolved_database_url())
    with engine.connect() as conn:
        trans = conn.begin()
        _SCRATCH.create_all(conn)
        conn.execute(stmt, values("sa"))
        execute_many(conn, stmt, values("raw"))
        c = _KINDS.c
        read = {way: conn.execute(select(c.n, c.origin, c.blob, c.at).where(c.way == way)
                                  .order_by(c.n)).all() for way in ("sa", "raw")}
        trans.rollback()
    engine.dispose()
    assert read["raw"] == read["sa"]
    assert len(read["raw"]) == len(rows)
