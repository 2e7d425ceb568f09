"""Pruning blobs no packet references: only those past the grace period, each logged.

And never one a submission in flight is about to reference: the submission
is refused instead (422), with nothing kept, whether the blobs are files in
a directory or rows in the database (``CADENA_BLOB_STORE=database``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from app import blob_prune
from app.blob_prune import PRUNED_SUFFIX, UPLOAD_PREFIX, prune
from app.blobs import BlobStorage, BlobStore
from app.cli import cli
from app.ledger import recording as audit
from app.ledger.engine import make_engine
from app.ledger.key import load_note_verifier
from app.ledger.unit_of_work import UnitOfWork, make_session_factory, transaction
from app.models.blob import Blob, BlobChunk
from app.models.ledger import LEDGER_TABLES
from ledger import verify_ledger
from ledger.sql import SqlStorage
from tests.app.conftest import World
from tests.app.test_packets_support import (
    assert_problem,
    envelope_b64,
    exchange,
    ledger_size,
    packet_id,
    sha256,
    submit,
    upload,
)

DAY = timedelta(days=1)


@pytest.fixture
def factory(world: World) -> Iterator[sessionmaker[UnitOfWork]]:
    """Sessions on the world's database, as ``cadena-server blobs prune`` opens them."""
    engine = make_engine(world.settings.resolved_database_url())
    yield make_session_factory(engine)
    engine.dispose()


def _store(world: World) -> BlobStore:
    return BlobStore(world.settings.data_dir / "blobs")


def _age(path: Path, hours: float) -> None:
    then = time.time() - hours * 3600
    os.utime(path, (then, then))


def _orphan(world: World, data: bytes, hours: float) -> str:
    assert upload(world, world.people["alice"], data).status_code in (200, 201)
    digest = sha256(data)
    _age(_store(world).path(digest), hours)
    return digest


def _verifies(world: World, factory: sessionmaker[UnitOfWork]) -> bool:
    verifier = load_note_verifier(world.settings.resolved_ledger_key_path(),
                                  world.settings.ledger_origin)
    with transaction(factory) as session:
        return verify_ledger(SqlStorage(session, LEDGER_TABLES), verifier).ok


def test_only_unreferenced_blobs_past_the_grace_period_go_each_logged(
        world: World, factory: sessionmaker[UnitOfWork]) -> None:
    ex = exchange(world)
    sealed = ex.seal()
    assert submit(world, ex.alice, sealed).status_code == 201
    for stream in sealed.streams:  # referenced, however old
        _age(_store(world).path(sha256(stream)), 48)
    old = _orphan(world, b"abandoned upload", 48)
    fresh = _orphan(world, b"upload in progress", 1)
    size = ledger_size(world)
    report = prune(factory, _store(world), DAY)
    assert [c.sha256 for c in report.pruned] == [old]
    assert (report.examined, report.referenced, report.recent) == (len(sealed.streams) + 2,
                                                                   len(sealed.streams), 1)
    assert _store(world).size(old) is None
    assert _store(world).size(fresh) == len(b"upload in progress")
    assert all(_store(world).size(sha256(s)) == len(s) for s in sealed.streams)
    assert ledger_size(world) == size + 1
    entry = world.last_entry()
    assert (entry.action, entry.outcome, entry.actor) == ("blob.prune", "granted", None)
    assert entry.subject == {"type": "blob", "id": old}
    assert entry.details["size"] == len(b"abandoned upload")
    assert _verifies(world, factory)
    got = world.client.get(f"/v1/packets/{packet_id(sealed)}/streams/1", headers=ex.bob.auth)
    assert got.content == sealed.streams[1]


def test_uploading_a_stored_blob_again_restarts_its_grace_period(
        world: World, factory: sessionmaker[UnitOfWork]) -> None:
    exchange(world)
    digest = _orphan(world, b"kept by a second upload", 48)
    again = upload(world, world.people["alice"], b"kept by a second upload")
    assert again.status_code == 200
    report = prune(factory, _store(world), DAY)
    assert (report.pruned, report.recent) == ([], 1)
    assert _store(world).size(digest) is not None


def test_a_dry_run_reports_and_changes_nothing(world: World,
                                               factory: sessionmaker[UnitOfWork]) -> None:
    exchange(world)
    digest = _orphan(world, b"would go", 48)
    partial = _store(world).path(digest).parent / f"{UPLOAD_PREFIX}crashed"
    partial.write_bytes(b"half")
    _age(partial, 48)
    size = ledger_size(world)
    report = prune(factory, _store(world), DAY, dry_run=True)
    assert ([c.sha256 for c in report.pruned], report.partial_uploads) == ([digest], 1)
    assert _store(world).size(digest) is not None
    assert partial.exists()
    assert ledger_size(world) == size


def test_stale_partial_uploads_go_without_an_entry(world: World,
                                                   factory: sessionmaker[UnitOfWork]) -> None:
    exchange(world)
    digest = _orphan(world, b"kept: young", 1)
    directory = _store(world).path(digest).parent
    stale, young = directory / f"{UPLOAD_PREFIX}stale", directory / f"{UPLOAD_PREFIX}young"
    stale.write_bytes(b"partial")
    young.write_bytes(b"partial")
    _age(stale, 48)
    size = ledger_size(world)
    report = prune(factory, _store(world), DAY)
    assert (report.partial_uploads, stale.exists(), young.exists()) == (1, False, True)
    assert ledger_size(world) == size


def test_a_failed_batch_moves_its_blobs_back_and_logs_nothing(
        world: World, factory: sessionmaker[UnitOfWork], monkeypatch: pytest.MonkeyPatch) -> None:
    exchange(world)
    digests = [_orphan(world, f"orphan {i}".encode(), 48) for i in range(3)]
    real = audit.record_many

    def failing(session: Session, entries: Any) -> Any:
        real(session, entries)
        raise RuntimeError("injected: the database went away before the commit")

    monkeypatch.setattr(blob_prune, "record_many", failing)
    size = ledger_size(world)
    with pytest.raises(RuntimeError, match="injected"):
        prune(factory, _store(world), DAY)
    assert ledger_size(world) == size
    assert all(_store(world).size(d) is not None for d in digests)
    assert not list(_store(world).root.glob(f"??/??/*{PRUNED_SUFFIX}"))


def test_blobs_a_crash_left_aside_are_moved_back_and_considered_again(
        world: World, factory: sessionmaker[UnitOfWork]) -> None:
    exchange(world)
    digest = _orphan(world, b"left aside by a crash", 1)  # young: it stays
    path = _store(world).path(digest)
    os.replace(path, path.with_name(path.name + PRUNED_SUFFIX))
    report = prune(factory, _store(world), DAY)
    assert (report.restored, report.pruned) == (1, [])
    assert _store(world).size(digest) == len(b"left aside by a crash")


def test_the_command_line_prunes(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    exchange(world)
    digest = _orphan(world, b"via the command line", 48)
    monkeypatch.setenv("CADENA_DATA_DIR", str(world.settings.data_dir))
    monkeypatch.setenv("CADENA_DATABASE_URL", world.settings.resolved_database_url())
    from app.settings import get_settings
    get_settings.cache_clear()
    try:
        dry = CliRunner().invoke(cli, ["blobs", "prune", "--dry-run"])
        assert dry.exit_code == 0, dry.output
        assert "would prune 1 blobs" in dry.output
        assert _store(world).size(digest) is not None
        done = CliRunner().invoke(cli, ["blobs", "prune", "--older-than", "24"])
        assert done.exit_code == 0, done.output
        assert "pruned 1 blobs (20 bytes)" in done.output
        assert _store(world).size(digest) is None
        refused = CliRunner().invoke(cli, ["blobs", "prune", "--older-than", "0.5"])
        assert refused.exit_code == 2  # under the one-hour minimum
    finally:
        get_settings.cache_clear()


def test_any_mix_of_ages_and_references_prunes_exactly_the_old_orphans(
        world: World, factory: sessionmaker[UnitOfWork], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blob_prune, "BATCH", 2)  # several transactions per run
    ex = exchange(world)
    store = _store(world)
    referenced: set[str] = set()  # over every example: the world is shared

    def stored() -> set[str]:
        return {p.name for p in store.root.glob("??/??/*") if len(p.name) == 64}

    def old(digest: str) -> bool:
        return time.time() - store.path(digest).stat().st_mtime >= DAY.total_seconds()

    @settings(max_examples=10, deadline=None)
    @given(orphans=st.lists(st.tuples(st.binary(min_size=1, max_size=40), st.booleans()),
                            max_size=5, unique_by=lambda o: o[0]),
           packets=st.integers(0, 2), packets_old=st.booleans())
    def check(orphans: list[tuple[bytes, bool]], packets: int, packets_old: bool) -> None:
        for _ in range(packets):
            sealed = ex.seal()
            assert submit(world, ex.alice, sealed).status_code == 201
            for stream in sealed.streams:
                referenced.add(sha256(stream))
                _age(store.path(sha256(stream)), 48 if packets_old else 1)
        for data, is_old in orphans:
            assert upload(world, ex.alice, data).status_code in (200, 201)
            _age(store.path(sha256(data)), 48 if is_old else 1)
        before = stored()
        expected = {d for d in before - referenced if old(d)}
        size = ledger_size(world)
        report = prune(factory, store, DAY)
        gone = before - stored()
        assert gone == expected == {c.sha256 for c in report.pruned}
        assert ledger_size(world) == size + len(gone)
        assert {e.subject["id"] for e in world.entries()[size:]} == gone
        assert referenced <= stored()

    check()
    assert _verifies(world, factory)


def _age_blobs(world: World, store: BlobStorage, digests: list[str], hours: float) -> None:
    """Make stored blobs look ``hours`` old: file times in a directory, ``stored_at`` in rows."""
    if isinstance(store, BlobStore):
        for digest in digests:
            _age(store.path(digest), hours)
        return
    engine = make_engine(world.settings.resolved_database_url())
    try:
        with engine.begin() as conn:
            conn.execute(update(Blob).where(Blob.sha256.in_(digests))
                         .values(stored_at=func.now() - timedelta(hours=hours)))
    finally:
        engine.dispose()


@pytest.mark.parametrize("world_kind", ["postgres_world", "blob_db_world"])
def test_a_submission_whose_blobs_are_pruned_under_it_is_refused_and_keeps_nothing(
        world_kind: str, request: pytest.FixtureRequest,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """On PostgreSQL, blobs in a directory and in rows alike.

    A submission checks its blobs before it takes the ledger head lock; a
    prune may run in between. SQLite cannot interleave them (every
    transaction holds the write lock from BEGIN IMMEDIATE).
    """
    world: World = request.getfixturevalue(world_kind)
    app: FastAPI = world.client.app  # type: ignore[assignment]
    store: BlobStorage = app.state.blob_store
    ex = exchange(world)
    sealed = ex.seal()
    for stream in sealed.streams:
        assert upload(world, ex.alice, stream).status_code in (200, 201)
    digests = [sha256(stream) for stream in sealed.streams]
    _age_blobs(world, store, digests, 48)
    engine = make_engine(world.settings.resolved_database_url())
    factory = make_session_factory(engine)
    from app.packets import submission
    real = submission._store
    pruned: list[int] = []

    def prune_meanwhile(*args: Any, **kwargs: Any) -> Any:
        pruned.append(len(prune(factory, store, DAY).pruned))
        return real(*args, **kwargs)

    monkeypatch.setattr(submission, "_store", prune_meanwhile)
    size = ledger_size(world)
    try:
        response = world.client.post("/v1/packets", headers=ex.alice.auth,
                                     json={"envelope": envelope_b64(sealed)})
        with engine.connect() as conn:
            rows = (conn.execute(select(func.count()).select_from(Blob)).scalar_one(),
                    conn.execute(select(func.count()).select_from(BlobChunk)).scalar_one())
    finally:
        engine.dispose()
    assert pruned == [len(sealed.streams)]
    assert_problem(response, 422, "missing-stream")
    assert ledger_size(world) == size + len(sealed.streams)  # the prunes, no submission
    assert world.client.get(f"/v1/packets/{packet_id(sealed)}",
                            headers=ex.alice.auth).status_code == 404
    assert rows == (0, 0)  # no row kept (the directory store never writes one)
    assert all(store.size(digest) is None for digest in digests)
