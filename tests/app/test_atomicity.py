"""Invariant 2: an action and its ledger entry commit together or not at all."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.ledger.engine import make_engine
from app.ledger.unit_of_work import UnitOfWork
from app.models.packet import Packet, PacketKey
from app.packets import submission
from tests.app.conftest import World
from tests.app.test_packets_support import envelope_b64, exchange, ledger_size, upload


def _count(world: World, model: type[Any]) -> int:
    engine = make_engine(world.settings.resolved_database_url())
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(model)).scalar_one())
    finally:
        engine.dispose()


@pytest.fixture
def lenient(world: World) -> TestClient:
    """A client that turns server errors into 500 responses instead of raising them."""
    return TestClient(world.client.app, raise_server_exceptions=False)


def _submit_failing(world: World, lenient: TestClient) -> tuple[int, int]:
    ex = exchange(world)
    sealed = ex.seal()
    for stream in sealed.streams:
        upload(world, ex.alice, stream)
    size = ledger_size(world)
    response = lenient.post("/v1/packets", headers=ex.alice.auth,
                            json={"envelope": envelope_b64(sealed)})
    assert response.status_code >= 500
    return size, ledger_size(world)


def test_failure_after_the_insert_leaves_neither_packet_nor_entry(
        world: World, lenient: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk controller on fire")

    monkeypatch.setattr(submission, "record", broken)
    before, after = _submit_failing(world, lenient)
    assert after == before
    assert (_count(world, Packet), _count(world, PacketKey)) == (0, 0)


def test_failure_at_commit_leaves_neither_packet_nor_entry(
        world: World, lenient: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    failures: list[str] = []
    commit = UnitOfWork.commit

    def stores_a_packet(session: UnitOfWork) -> bool:
        return any(stmt.table.name == Packet.__tablename__
                   for stmt, _ in session.queued_at_commit)

    def fail_once(session: UnitOfWork) -> None:
        if stores_a_packet(session) and not failures:
            failures.append("failed")
            raise RuntimeError("power cut before commit")
        commit(session)

    # In the one commit path, before COMMIT: the packet's rows are still queued,
    # to be sent with COMMIT (``UnitOfWork.insert_at_commit``); the entry is appended.
    monkeypatch.setattr(UnitOfWork, "commit", fail_once)
    before, after = _submit_failing(world, lenient)
    assert failures == ["failed"]
    assert after == before
    assert _count(world, Packet) == 0
