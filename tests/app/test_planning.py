"""PostgreSQL plans the hot routes' prepared statements once per connection (ADR 0043).

psycopg prepares a statement at its fifth execution on a connection; PostgreSQL
then uses a generic plan if it looks no dearer than the custom ones it made
for the first five, else plans again at every execution. A listing's
``LIMIT`` given as a parameter is estimated at a tenth of the rows, so once an
inbox held a few thousand packets the listing (1.5 ms to plan, more than to
run) was planned afresh at every request. Its ``LIMIT`` is now written into
the statement (``app.ledger.sqlread``, a literal parameter).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import (
    String,
    Table,
    cast,
    func,
    insert,
    literal,
    literal_column,
    select,
    text,
    true,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from app.ledger.engine import make_engine
from app.models.packet import Packet, PacketKey
from app.packets import listing
from tests.app.conftest import World
from tests.app.test_packets_support import exchange

pytestmark = pytest.mark.postgres

COPIES = 3000
"""Enough packets for the generic plan of a parameter ``LIMIT`` to look dear (2,859 did)."""


def _copies(world: World, packet_id: str) -> None:
    """``COPIES`` more packets like ``packet_id``, each a second older, with its keys."""
    series = func.generate_series(1, COPIES).table_valued("n", name="copies").render_derived()
    n = series.c.n
    copy_id = literal("copy-") + cast(n, String())
    older: ColumnElement[Any] = literal_column("interval '1 second'") * n
    engine = world.client.app.state.engine  # type: ignore[attr-defined]
    with engine.begin() as conn:
        tables: tuple[tuple[Table, str], ...] = (
            (Packet.__table__, "id"), (PacketKey.__table__, "packet_id"))  # type: ignore[assignment]
        for table, key in tables:
            columns = [c.name for c in table.columns]
            values = [copy_id if c == key else table.c[c] - older if c == "submitted_at"
                      else table.c[c] for c in columns]
            conn.execute(insert(table).from_select(
                columns, select(*values).select_from(table.join(series, true()))
                .where(table.c[key] == packet_id)))
        conn.execute(text("ANALYZE"))


def test_a_large_inboxs_listing_is_planned_once_per_connection(
        postgres_world: World) -> None:
    world = postgres_world
    ex = exchange(world)
    _copies(world, ex.sent()[1])
    token_id = (ex.bob.token or "").split(".")[1]
    engine = world.client.app.state.engine  # type: ignore[attr-defined]
    with engine.connect() as conn, Session(bind=conn) as session:
        for _ in range(12):
            found = listing.listing_with_token(
                session, token_id, datetime.now(UTC), listing.PacketFilter("inbox"),
                after=None, limit=50)
            assert found is not None
            assert len(found.page) == 50
            session.commit()  # psycopg forgets every prepared statement at a ROLLBACK
        plans = conn.exec_driver_sql(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
            " WHERE strpos(statement, 'AS page') > 0").all()
    assert len(plans) == 1
    generic, custom = plans[0]
    assert generic >= 1, (generic, custom)


def _prepared(conn: Any) -> int:
    """How many times the prepared ``SELECT`` of :func:`_probe` was executed on ``conn``."""
    row = conn.exec_driver_sql(
        "SELECT generic_plans + custom_plans FROM pg_prepared_statements"
        " WHERE strpos(statement, 'cadena_probe') > 0").first()
    return 0 if row is None else int(row[0])


def _probe(conn: Any) -> None:
    conn.execute(text("SELECT 1 AS cadena_probe FROM liaisons WHERE id = :id"), {"id": "coord"})


@pytest.mark.parametrize("ending", ["refused", "failed"])
def test_a_rollback_keeps_the_connections_prepared_statements(
        postgres_url: str, ending: str) -> None:
    """psycopg deallocates every prepared statement of a connection at a ROLLBACK (in
    case the transaction created or dropped what they name). The serving engine's
    transactions run no DDL, and every refusal ends in one: each refused request made
    its connection plan every hot statement afresh for the next five to ten requests
    (about 11 ms of the database's CPU a refusal, bench/refusals.py)."""
    engine = make_engine(postgres_url, keep_prepared=True, pool_size=1, max_overflow=0)
    try:
        with engine.connect() as conn:
            for _ in range(7):  # prepared at the fifth
                _probe(conn)
                conn.commit()
            before = _prepared(conn)
            assert before >= 1
            conn.commit()
            _probe(conn)
            if ending == "failed":  # an error inside the transaction, then the rollback
                with pytest.raises(DBAPIError):
                    conn.exec_driver_sql("SELECT 1 / 0")
            conn.rollback()
            _probe(conn)  # runs the same prepared statement again
            assert _prepared(conn) == before + 2
            conn.commit()
        # The pool's own rollback on return (a connection given back mid-transaction).
        with engine.connect() as conn:
            _probe(conn)
        with engine.connect() as conn:
            assert _prepared(conn) == before + 3
    finally:
        engine.dispose()
