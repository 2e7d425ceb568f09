"""The service side: registering witnesses, collecting cosignatures, serving them.

Each witness runs its real HTTP server (uvicorn, loopback, a free port) in a
thread; the service talks to it with httpx like in production. Runs on
SQLite and on PostgreSQL (the ``world`` fixture).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.orm import sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.ledger.engine import make_engine
from app.ledger.unit_of_work import UnitOfWork, make_session_factory
from app.witnesses.service import pending
from app.witnesses.witnessing import Witnessing
from ledger import (
    NoteVerifier,
    open_checkpoint,
    parse_checkpoint_body,
    parse_note,
    verify_cosignature,
)
from tests.app.conftest import World, sign_checkpoint_now
from tests.witness.helpers import blackhole, serving, witness_signer
from witness.server import create_app
from witness.store import WitnessStore
from witness.witness import Witness

WITNESS_KEY = witness_signer().verifier_key()


@pytest.fixture
def sessions(world: World) -> Iterator[sessionmaker[UnitOfWork]]:
    """Sessions on the world's database, for the witnessing rounds the tests run."""
    engine = make_engine(world.settings.resolved_database_url())
    yield make_session_factory(engine)
    engine.dispose()


def ledger_key(world: World) -> NoteVerifier:
    """The ledger's verifier key, as the service publishes it."""
    return NoteVerifier.from_string(world.client.get("/v1/ledger/key").text.strip())


@pytest.fixture
def witness(world: World, tmp_path: Path) -> Witness:
    """A witness that follows the world's ledger."""
    key = ledger_key(world)
    return Witness(witness_signer(), {key.name: (key,)}, WitnessStore(tmp_path / "witness.db"))


@pytest.fixture
def witness_url(witness: Witness) -> Iterator[str]:
    """The witness, served over loopback HTTP."""
    with serving(create_app(witness)) as url:
        yield url


def register(world: World, name: str, url: str, key: str = WITNESS_KEY) -> httpx.Response:
    """Register a witness as the coordinator."""
    response: httpx.Response = world.client.post(
        "/v1/witnesses", headers=world.coordinator.auth,
        json={"name": name, "url": url, "verifier_key": key})
    return response


def served_checkpoint(world: World) -> str:
    """The note ``GET /v1/ledger/checkpoint`` serves."""
    response = world.client.get("/v1/ledger/checkpoint")
    assert response.status_code == 200, response.text
    return str(response.text)


def cosignatures(note: str) -> list[str]:
    """The signature lines of ``note`` other than the first (the log's)."""
    return note.rstrip("\n").split("\n\n")[-1].split("\n")[1:]


def listed(world: World) -> dict[str, int]:
    """Active witnesses by name, with the size each last cosigned."""
    response = world.client.get("/v1/witnesses", headers=world.coordinator.auth)
    assert response.status_code == 200, response.text
    return {w["name"]: w["last_size"] for w in response.json()}


def test_witnesses_are_registered_listed_and_removed_and_logged(world: World) -> None:
    response = register(world, "mx-fgr", "http://127.0.0.1:9/prefix/")
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["url"], body["verifier_key"]) == ("http://127.0.0.1:9/prefix", WITNESS_KEY)
    assert (body["key_name"], body["last_size"]) == ("witness.example/w1", 0)
    entry = world.last_entry()
    assert (entry.action, entry.subject) == ("witness.register", {"type": "witness",
                                                                  "id": "mx-fgr"})
    assert listed(world) == {"mx-fgr": 0}
    assert world.last_entry().action == "witness.list"
    removed = world.client.delete("/v1/witnesses/mx-fgr", headers=world.coordinator.auth)
    assert removed.status_code == 204
    assert world.last_entry().action == "witness.remove"
    assert listed(world) == {}
    assert register(world, "mx-fgr", "http://127.0.0.1:9").status_code == 201


def test_bad_registrations_are_refused(world: World) -> None:
    assert register(world, "a", "http://127.0.0.1:9").status_code == 201
    note_key = str(ledger_key(world))  # a note key (0x01) is not a cosigner key
    assert register(world, "a", "http://127.0.0.1:8", note_key).status_code == 422
    assert register(world, "a", "http://127.0.0.1:8").status_code == 409
    assert register(world, "b", "http://127.0.0.1:8").status_code == 409  # same key
    assert register(world, "c", "ftp://127.0.0.1:8").status_code == 422
    missing = world.client.delete("/v1/witnesses/zz", headers=world.coordinator.auth)
    assert missing.status_code == 404


def test_only_coordinators_register_and_the_refusal_is_logged(world: World) -> None:
    world.state("MX")
    prosecutor = world.liaison("pros", "MX")
    response = world.client.post("/v1/witnesses", headers=prosecutor.auth, json={
        "name": "x", "url": "http://127.0.0.1:9", "verifier_key": WITNESS_KEY})
    assert response.status_code == 403
    entry = world.last_entry()
    assert (entry.action, entry.outcome) == ("witness.register", "denied")


def test_the_checkpoint_is_served_with_the_witness_cosignature(
        world: World, sessions: sessionmaker[UnitOfWork], witness: Witness,
        witness_url: str) -> None:
    assert register(world, "mx", witness_url).status_code == 201
    collector = Witnessing(sessions, 3600)
    try:
        for _ in range(2):  # the first from size 0, the next with a consistency proof
            world.client.get("/v1/witnesses", headers=world.coordinator.auth)  # grows the log
            sign_checkpoint_now(world)
            collector.run_round(timeout=20)
            note = served_checkpoint(world)
            checkpoint = open_checkpoint(note, ledger_key(world))
            [line] = cosignatures(note)
            verify_cosignature(checkpoint, line, NoteVerifier.from_string(WITNESS_KEY))
            latest = witness.store.latest(checkpoint.origin)
            assert latest is not None
            assert latest.size == checkpoint.size
    finally:
        collector.stop()
    assert listed(world) == {"mx": checkpoint.size}


def _size(note: str) -> int:
    return parse_checkpoint_body(parse_note(note).text_body).size


def test_a_409_teaches_the_witness_size_and_the_proof_starts_there(
        world: World, sessions: sessionmaker[UnitOfWork], witness: Witness,
        witness_url: str) -> None:
    assert register(world, "mx", witness_url).status_code == 201
    sign_checkpoint_now(world)
    first = served_checkpoint(world)
    witness.add_checkpoint(b"old 0\n\n" + first.encode())  # cosigned behind the service's back
    listed(world)  # grows the log
    sign_checkpoint_now(world)
    collector = Witnessing(sessions, 3600)
    try:
        collector.run_round(timeout=20)  # old 0 -> 409 "<first>" -> proof from first: 200
    finally:
        collector.stop()
    note = served_checkpoint(world)
    assert _size(note) > _size(first)
    assert len(cosignatures(note)) == 1
    assert listed(world) == {"mx": _size(note)}


def test_a_witness_already_at_the_latest_size_cosigns_it_again(
        world: World, sessions: sessionmaker[UnitOfWork], witness: Witness,
        witness_url: str) -> None:
    assert register(world, "mx", witness_url).status_code == 201
    sign_checkpoint_now(world)
    witness.add_checkpoint(b"old 0\n\n" + served_checkpoint(world).encode())
    collector = Witnessing(sessions, 3600)
    try:
        collector.run_round(timeout=20)  # old 0 -> 409 at our size -> same size, same root
    finally:
        collector.stop()
    assert len(cosignatures(served_checkpoint(world))) == 1


def test_an_unreachable_witness_delays_nothing_else(
        world: World, sessions: sessionmaker[UnitOfWork], witness: Witness,
        witness_url: str) -> None:
    with blackhole() as silent:
        assert register(world, "silent", silent,
                        witness_signer("silent.example/w", bytes(31) + b"\1").verifier_key()
                        ).status_code == 201
        assert register(world, "gone", "http://127.0.0.1:9",
                        witness_signer("gone.example/w", bytes(32)).verifier_key()
                        ).status_code == 201
        assert register(world, "mx", witness_url).status_code == 201
        sign_checkpoint_now(world)
        with httpx.Client(timeout=2.0) as client:
            collector = Witnessing(sessions, 3600, client=client)
            try:
                started = time.monotonic()
                futures = collector.run_once()
                assert time.monotonic() - started < 1.0
                assert len(futures) == 3
                listed(world)
                sign_checkpoint_now(world)  # checkpoints go on while a witness hangs
                for future in futures:
                    future.result(timeout=20)
                assert cosignatures(served_checkpoint(world)) == []  # a newer checkpoint
                started = time.monotonic()
                collector.run_round(timeout=20)  # mx catches up; silent backs off
                assert time.monotonic() - started < 1.5
            finally:
                collector.stop()
    note = served_checkpoint(world)
    assert len(cosignatures(note)) == 1
    assert listed(world) == {"silent": 0, "gone": 0, "mx": _size(note)}


def test_the_background_thread_collects_cosignatures(
        world: World, sessions: sessionmaker[UnitOfWork], witness_url: str) -> None:
    assert register(world, "mx", witness_url).status_code == 201
    sign_checkpoint_now(world)
    collector = Witnessing(sessions, 0.05)
    collector.start()
    try:
        deadline = time.monotonic() + 20
        while not cosignatures(served_checkpoint(world)) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        collector.stop()
    assert len(cosignatures(served_checkpoint(world))) == 1


def test_a_removed_witness_is_not_asked(world: World, sessions: sessionmaker[UnitOfWork],
                                        witness: Witness, witness_url: str) -> None:
    assert register(world, "mx", witness_url).status_code == 201
    world.client.delete("/v1/witnesses/mx", headers=world.coordinator.auth)
    sign_checkpoint_now(world)
    collector = Witnessing(sessions, 3600)
    try:
        assert collector.run_once() == []
    finally:
        collector.stop()
    assert witness.store.latest(ledger_key(world).name) is None


def test_a_witness_claiming_a_size_never_signed_is_reported(
        world: World, sessions: sessionmaker[UnitOfWork]) -> None:
    async def confused(request: Request) -> Response:
        return Response("3\n", status_code=409, headers={"Content-Type": "text/x.tlog.size"})

    with serving(Starlette(routes=[Route("/add-checkpoint", confused, methods=["POST"])])) as url:
        assert register(world, "confused", url).status_code == 201
        sign_checkpoint_now(world)
        collector = Witnessing(sessions, 3600)
        try:
            [future] = collector.run_once()
            future.result(timeout=20)
        finally:
            collector.stop()
    assert listed(world) == {"confused": 3}  # what it said, so the next rounds start there
    assert cosignatures(served_checkpoint(world)) == []
    with sessions() as session:
        submissions, failures = pending(session)
    assert submissions == []
    assert failures == [("confused", "no signed checkpoint has tree size 3")]
