"""The database blob store (``CADENA_BLOB_STORE=database``): the directory store's
guarantees in PostgreSQL rows, pruning, and two API hosts sharing one database.

Everything runs against a real PostgreSQL database, migrated; the two-host
test runs two real ``cadena-server serve`` processes and the real CLI.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.errors import UniqueViolation
from sqlalchemy import Engine, delete, func, insert, select, update

from app.blob_db import (
    DatabaseBlobStore,
    UploadInProgress,
    blob_store_conflict,
    make_blob_store,
)
from app.blob_prune import prune
from app.blobs import (
    BlobDigestMismatch,
    BlobStorage,
    ByteRange,
    ContentTooLarge,
    parse_range,
    receive_blob,
)
from app.errors import Unavailable
from app.ledger import make_engine, make_session_factory
from app.models.blob import Blob, BlobChunk
from app.settings import Settings
from bench._server import run_command, server_env
from bench.transfer import MIB, file_sha256, rig, run_cli, write_file
from tests.app.conftest import World
from tests.app.test_packets_support import (
    assert_granted,
    assert_problem,
    exchange,
    last_entry,
    ledger_size,
    packet_id,
    sha256,
    submit,
    upload,
)

pytestmark = pytest.mark.postgres


@pytest.fixture
def engine(postgres_url: str) -> Iterator[Engine]:
    made = make_engine(postgres_url)
    yield made
    made.dispose()


def _store(engine: Engine, chunk_bytes: int = 1000) -> DatabaseBlobStore:
    return DatabaseBlobStore(engine, chunk_bytes)


def _rows(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        return (conn.execute(select(func.count()).select_from(Blob)).scalar_one(),
                conn.execute(select(func.count()).select_from(BlobChunk)).scalar_one())


def _ledger_size(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT count(*) FROM ledger_entries").scalar_one())


def _put(store: DatabaseBlobStore, data: bytes, piece: int = 777) -> None:
    writer = store.writer(sha256(data), len(data) + 1)
    for i in range(0, len(data), piece):
        writer.write(data[i:i + piece])
    assert writer.commit().created


def test_a_blob_is_cut_into_chunk_rows_and_read_back(engine: Engine) -> None:
    store = _store(engine)
    data = os.urandom(5500)
    _put(store, data)
    assert store.size(sha256(data)) == 5500
    assert b"".join(store.read(sha256(data))) == data
    assert _rows(engine) == (1, 6)  # 5 full chunks of 1000 and one of 500
    again = store.writer(sha256(data), 10_000)
    again.write(data)
    assert again.commit().created is False
    assert _rows(engine) == (1, 6)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(data=st.binary(min_size=1, max_size=300), chunk=st.integers(1, 64),
       piece=st.integers(1, 100), first=st.integers(0, 299), length=st.integers(1, 300))
def test_every_range_across_chunk_boundaries_reads_the_right_bytes(
        engine: Engine, data: bytes, chunk: int, piece: int, first: int, length: int) -> None:
    store = _store(engine, chunk)
    digest = sha256(data)
    if store.size(digest) is None:
        _put(store, data, piece)
    first = first % len(data)
    wanted = ByteRange(first, min(first + length, len(data)) - 1, len(data))
    assert b"".join(store.read(digest, wanted)) == data[first:wanted.last + 1]
    parsed = parse_range(f"bytes=-{length}", len(data))

    async def streamed() -> bytes:
        return b"".join([c async for c in store.stream(digest, parsed)])

    assert asyncio.run(streamed()) == data[-length:]


def test_a_partial_upload_is_never_visible_and_leaves_no_row(engine: Engine) -> None:
    store = _store(engine)
    data = os.urandom(4000)
    writer = store.writer(sha256(data), 10_000)
    writer.write(data[:3500])  # three chunk rows inserted, uncommitted
    assert store.size(sha256(data)) is None
    assert _rows(engine) == (0, 0)
    with pytest.raises(FileNotFoundError):
        list(store.read(sha256(data)))
    writer.abort()
    assert _rows(engine) == (0, 0)


def test_a_digest_mismatch_is_refused_and_keeps_nothing(engine: Engine) -> None:
    store = _store(engine)
    writer = store.writer(sha256(b"claimed"), 10_000)
    writer.write(os.urandom(2500))
    with pytest.raises(BlobDigestMismatch):
        writer.commit()
    assert _rows(engine) == (0, 0)
    writer.abort()


def test_a_blob_past_the_limit_is_refused_and_keeps_nothing(engine: Engine) -> None:
    store = _store(engine)
    data = os.urandom(3000)
    writer = store.writer(sha256(data), 2999)
    writer.write(data[:2000])
    with pytest.raises(ContentTooLarge):
        writer.write(data[2000:])
    assert _rows(engine) == (0, 0)


def test_a_second_upload_of_a_blob_in_flight_is_refused_at_once(engine: Engine) -> None:
    store = _store(engine)
    data = os.urandom(1500)
    first = store.writer(sha256(data), 10_000)
    first.write(data[:1200])
    with pytest.raises(UploadInProgress):
        store.writer(sha256(data), 10_000)
    first.write(data[1200:])
    first.commit()
    later = store.writer(sha256(data), 10_000)  # the lock went with the transaction
    later.write(data)
    assert later.commit().created is False


def test_receive_blob_streams_a_body_into_rows(engine: Engine) -> None:
    store = _store(engine, 64 * 1024)
    data = os.urandom(3 * MIB + 5)

    async def body() -> AsyncIterator[bytes]:
        for i in range(0, len(data), 65_536):
            yield data[i:i + 65_536]

    stored = asyncio.run(receive_blob(body(), store.writer(sha256(data), len(data))))
    assert (stored.size, stored.created) == (len(data), True)
    assert b"".join(store.read(sha256(data))) == data


def test_a_body_cut_off_mid_upload_leaves_no_row(engine: Engine) -> None:
    store = _store(engine, 64 * 1024)
    data = os.urandom(3 * MIB)

    async def body() -> AsyncIterator[bytes]:
        yield data[:2 * MIB]  # two batches written, 32 chunk rows inserted
        raise ConnectionResetError("the client went away")

    with pytest.raises(ConnectionResetError):
        asyncio.run(receive_blob(body(), store.writer(sha256(data), len(data))))
    assert _rows(engine) == (0, 0)
    again = store.writer(sha256(data), len(data))  # its lock went with the rollback
    again.write(data)
    assert again.commit().created is True


def test_a_row_refused_by_the_database_mid_upload_fails_it_and_keeps_nothing(
        engine: Engine) -> None:
    # Chunk rows are sent without waiting for each one's answer: a row the database
    # refuses (here a stray committed row at the same key) must still fail the upload,
    # roll it back whole, and leave the store's connections usable.
    pool = make_engine(engine.url.render_as_string(hide_password=False), pool_size=1,
                       max_overflow=0)
    store = DatabaseBlobStore(pool, 1000, lookups=engine)
    data = os.urandom(5500)
    try:
        with engine.begin() as conn:
            conn.execute(insert(BlobChunk).values(sha256=sha256(data), seq=2, data=b"x"))
        with pytest.raises(UniqueViolation):
            _put(store, data, 700)  # the failing writer rolls back and returns its connection
        assert store.size(sha256(data)) is None
        assert _rows(engine) == (0, 1)  # only the stray row
        with engine.begin() as conn:
            conn.execute(delete(BlobChunk))
        _put(store, data)  # the one connection is back in the pool, in a clean state
        assert b"".join(store.read(sha256(data))) == data
    finally:
        pool.dispose()


def test_database_blobs_are_refused_on_sqlite(tmp_path: Path) -> None:
    on_sqlite = Settings(data_dir=tmp_path, blob_store="database")
    conflict = blob_store_conflict(on_sqlite)
    assert conflict is not None
    assert "needs PostgreSQL" in conflict
    with pytest.raises(ValueError, match="needs PostgreSQL"):
        make_blob_store(on_sqlite)
    assert blob_store_conflict(Settings(data_dir=tmp_path)) is None


def test_transfers_past_the_pool_are_503_and_lookups_still_answer(engine: Engine,
                                                                 postgres_url: str) -> None:
    one = make_engine(postgres_url, pool_size=1, max_overflow=0, pool_timeout=0.2)
    store = DatabaseBlobStore(one, 1000, lookups=engine)
    try:
        data = os.urandom(1500)
        holding = store.writer(sha256(data), 10_000)  # the one transfer connection
        holding.write(data)
        with pytest.raises(Unavailable):
            store.writer(sha256(b"another"), 10_000)
        assert store.size(sha256(data)) is None  # a submission's check does not wait
        holding.commit()
        assert store.size(sha256(data)) == 1500
    finally:
        one.dispose()


def test_serve_refuses_database_blobs_on_sqlite(tmp_path: Path) -> None:
    env = server_env(tmp_path / "data", extra={"CADENA_BLOB_STORE": "database"})
    done = run_command(env, ["serve", "--port", "1"])
    assert done.returncode == 2, done.stderr
    assert "CADENA_BLOB_STORE=database needs PostgreSQL" in done.stderr


def test_prune_deletes_old_unreferenced_rows_and_logs_each(engine: Engine,
                                                           postgres_url: str) -> None:
    store = _store(engine)
    old, fresh = os.urandom(2500), os.urandom(100)
    _put(store, old)
    _put(store, fresh)
    with engine.begin() as conn:
        conn.execute(update(Blob).where(Blob.sha256 == sha256(old))
                     .values(stored_at=func.now() - timedelta(hours=30)))
    factory = make_session_factory(engine)
    entries = _ledger_size(engine)
    dry = prune(factory, store, timedelta(hours=24), dry_run=True)
    assert [c.sha256 for c in dry.pruned] == [sha256(old)]
    assert _rows(engine) == (2, 4)
    report = prune(factory, store, timedelta(hours=24))
    assert [c.sha256 for c in report.pruned] == [sha256(old)]
    assert (report.examined, report.recent) == (2, 1)
    assert _rows(engine) == (1, 1)
    assert store.size(sha256(old)) is None
    assert store.size(sha256(fresh)) == 100
    assert _ledger_size(engine) == entries + 1  # one blob.prune entry; the dry run logs none


def _world_rows(world: World) -> tuple[int, int]:
    engine = make_engine(world.settings.resolved_database_url())
    try:
        return _rows(engine)
    finally:
        engine.dispose()


def test_http_upload_into_rows_is_logged_idempotent_and_checked(blob_db_world: World) -> None:
    world = blob_db_world
    alice = world.liaison("alice", "CO")
    data = os.urandom(2 * MIB + 10)
    first = upload(world, alice, data)
    assert first.status_code == 201, first.text
    assert (first.json()["size"], first.json()["created"]) == (len(data), True)
    assert_granted(world, first.json(), "blob.upload")
    assert upload(world, alice, data).status_code == 200
    assert _world_rows(world) == (1, 3)
    size = ledger_size(world)
    wrong = upload(world, alice, os.urandom(MIB + 1), digest=sha256(b"other"))
    assert_problem(wrong, 422, "digest-mismatch")
    world.settings.max_upload_bytes = 1000
    streamed = world.client.put(f"/v1/blobs/{sha256(b'y' * 3000)}", headers=alice.auth,
                                content=iter([b"y" * 600] * 5))
    assert_problem(streamed, 413, "too-large")
    assert ledger_size(world) == size
    assert _world_rows(world) == (1, 3)
    assert not (world.settings.data_dir / "blobs").exists()


def test_http_ranges_of_a_stream_in_rows_are_exactly_its_bytes(blob_db_world: World) -> None:
    world = blob_db_world
    ex = exchange(world)
    sealed, pid = ex.sent(message=os.urandom(3000), chunk_size=256)
    stream = sealed.streams[1]
    url = f"/v1/packets/{pid}/streams/1"

    @given(first=st.integers(0, len(stream) - 1), extra=st.integers(0, len(stream) + 100))
    def check(first: int, extra: int) -> None:
        last = first + extra
        response = world.client.get(url, headers={**ex.bob.auth,
                                                  "Range": f"bytes={first}-{last}"})
        assert response.status_code == 206
        assert response.content == stream[first:last + 1]
        end = min(last, len(stream) - 1)
        assert response.headers["content-range"] == f"bytes {first}-{end}/{len(stream)}"
        assert last_entry(world).details["range"] == f"{first}-{end}"

    check()
    whole = world.client.get(url, headers=ex.bob.auth)
    assert (whole.status_code, whole.content) == (200, stream)
    beyond = world.client.get(url, headers={**ex.bob.auth, "Range": f"bytes={len(stream)}-"})
    assert_problem(beyond, 416, "range-not-satisfiable")


def _app_store(world: World) -> BlobStorage:
    app: FastAPI = world.client.app  # type: ignore[assignment]
    store: BlobStorage = app.state.blob_store
    return store


def _age_rows(engine: Engine, digests: list[str], hours: float) -> None:
    with engine.begin() as conn:
        conn.execute(update(Blob).where(Blob.sha256.in_(digests))
                     .values(stored_at=func.now() - timedelta(hours=hours)))


def test_prune_in_rows_keeps_referenced_blobs_and_the_packet_downloads(
        blob_db_world: World) -> None:
    world = blob_db_world
    ex = exchange(world)
    sealed = ex.seal()
    assert submit(world, ex.alice, sealed).status_code == 201
    orphan = os.urandom(2000)
    assert upload(world, ex.alice, orphan).status_code == 201
    store = _app_store(world)
    engine = make_engine(world.settings.resolved_database_url())
    try:
        _age_rows(engine, [sha256(orphan), *(sha256(s) for s in sealed.streams)], 48)
        report = prune(make_session_factory(engine), store, timedelta(hours=24))
    finally:
        engine.dispose()
    assert [c.sha256 for c in report.pruned] == [sha256(orphan)]
    assert report.referenced == len(sealed.streams)
    assert world.last_entry().action == "blob.prune"
    got = world.client.get(f"/v1/packets/{packet_id(sealed)}/streams/1", headers=ex.bob.auth)
    assert got.content == sealed.streams[1]


def test_two_hosts_share_blobs_sent_through_one_fetched_through_the_other(
        tmp_path: Path, postgres_url: str) -> None:
    source = tmp_path / "wiretap.bin"
    want = write_file(source, 3 * MIB + 123)  # more than three 1 MiB chunks
    with rig(tmp_path, database_url=postgres_url, extra={"CADENA_BLOB_STORE": "database"},
             two_hosts=True) as r:
        assert r.other is not None
        assert r.other.url != r.server.url
        sent = run_cli(r.home, ["send", "--profile", "ana", "--to", "bruno", "--channel",
                                "bench", "--text", "two hosts", "--attach", str(source),
                                "--evaluation", "B2", "--quiet", "--json",
                                "--workdir", str(tmp_path)])
        assert sent.returncode == 0, sent.stderr
        packet = json.loads(sent.stdout)["id"]
        got = run_cli(r.home, ["fetch", packet, "--profile", "bruno", "--out",
                               str(tmp_path / "got"), "--quiet", "--json"])
        assert got.returncode == 0, got.stderr
    assert file_sha256(tmp_path / "got" / "attachments" / source.name) == want
    for host in ("server", "server2"):  # nothing on either host's disk
        assert not (tmp_path / host / "blobs").exists() or not any(
            p.is_file() for p in (tmp_path / host / "blobs").rglob("*"))
    engine = make_engine(postgres_url)
    try:
        blobs, chunks = _rows(engine)
    finally:
        engine.dispose()
    assert blobs >= 1
    assert chunks >= 4
