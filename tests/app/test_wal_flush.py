"""SQLite's shared WAL flush (docs/adr/0035-sqlite-shared-wal-flush.md).

The serving engine commits with ``synchronous=NORMAL`` and flushes the
write-ahead log itself: every commit is on disk before its committer goes on,
a unit of work's after its connection is back in the pool, and concurrent
commits share one fsync. Real SQLite files and real fsyncs; the failing fsync
is a real one (``fsync`` on ``/dev/null`` is ``EINVAL`` on Linux).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, make_url, text

from app.ledger import draft, make_engine, make_session_factory, record, wal_flush_of
from app.ledger.walflush import WalFlush, WalFlushFailed
from tests.app.conftest import World
from tests.conftest import fresh_database_url


def _synchronous(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.exec_driver_sql("PRAGMA synchronous").scalar_one())


@pytest.fixture
def sqlite_url(tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A fresh migrated SQLite database file."""
    return fresh_database_url("sqlite", request, tmp_path)


@pytest.fixture
def served(sqlite_url: str) -> Iterator[Engine]:
    """The engine as the server makes it."""
    engine = make_engine(sqlite_url, shared_flush=True)
    yield engine
    engine.dispose()


def test_only_the_serving_engine_leaves_the_flush_to_itself(sqlite_url: str,
                                                             served: Engine) -> None:
    plain = make_engine(sqlite_url)
    try:
        assert (_synchronous(served), _synchronous(plain)) == (1, 2)  # NORMAL, FULL
        assert wal_flush_of(served) is not None
        assert wal_flush_of(plain) is None
    finally:
        plain.dispose()


def test_postgresql_keeps_its_own_flush(postgres_url: str) -> None:
    engine = make_engine(postgres_url, shared_flush=True)
    try:
        assert wal_flush_of(engine) is None  # ADR 0028 flushes PostgreSQL's WAL
    finally:
        engine.dispose()


def _watch_fsyncs(engine: Engine) -> tuple[WalFlush, list[int]]:
    """The engine's flush, and the connections checked out at each of its fsyncs."""
    flush = wal_flush_of(engine)
    assert flush is not None
    seen: list[int] = []
    real = flush._fsync

    def fsync() -> None:
        seen.append(engine.pool.checkedout())  # type: ignore[attr-defined]
        real()

    flush._fsync = fsync  # type: ignore[method-assign]
    return flush, seen


def test_a_unit_of_work_is_on_disk_when_commit_returns_and_freed_its_connection_first(
        served: Engine) -> None:
    flush, seen = _watch_fsyncs(served)
    sessions = make_session_factory(served)
    for n in range(3):
        with sessions() as session:
            record(session, draft(None, "test.append", {"type": "test", "id": str(n)}))
            before = flush.durable
            session.commit()
            assert flush.durable > before
    assert seen == [0, 0, 0]  # no connection held while the disk is flushed


def test_a_plain_commit_on_the_serving_engine_is_flushed_before_it_returns(
        served: Engine) -> None:
    flush, seen = _watch_fsyncs(served)
    with served.begin() as conn:
        conn.execute(text("CREATE TABLE scratch (n INTEGER)"))
    with served.begin() as conn:
        conn.execute(text("INSERT INTO scratch VALUES (1)"))
        before = flush.durable
    assert flush.durable > before
    assert seen == [1, 1]  # inside commit(), the connection still held


def _concurrently(count: int, work: Callable[[int], None]) -> None:
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            work(n)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors


@settings(max_examples=20, deadline=None)
@given(threads=st.integers(1, 8), commits=st.integers(1, 6))
def test_a_flush_returns_only_once_a_fsync_begun_after_its_commit_ended(
        tmp_path_factory: pytest.TempPathFactory, threads: int, commits: int) -> None:
    database = tmp_path_factory.mktemp("wal") / "db"
    Path(f"{database}-wal").write_bytes(b"frames")
    flush = WalFlush(database)
    real = flush._fsync
    begun: list[int] = []

    def fsync() -> None:
        begun.append(flush._written)  # tickets given when this fsync began
        real()

    flush._fsync = fsync  # type: ignore[method-assign]

    def work(_: int) -> None:
        for _ in range(commits):
            ticket = flush.committed()
            flush.flush(ticket)
            assert any(given >= ticket for given in begun)
            assert flush.durable >= ticket

    _concurrently(threads, work)
    assert flush.durable == threads * commits
    assert flush.fsyncs == len(begun) <= threads * commits


def test_commits_waiting_together_share_one_fsync(tmp_path: Path) -> None:
    Path(f"{tmp_path / 'db'}-wal").write_bytes(b"frames")
    flush = WalFlush(tmp_path / "db")
    everyone_committed = threading.Barrier(6)

    def work(_: int) -> None:
        ticket = flush.committed()
        everyone_committed.wait(10)
        flush.flush(ticket)

    _concurrently(6, work)
    assert (flush.fsyncs, flush.durable) == (1, 6)


def test_a_failed_fsync_answers_503_and_every_later_commit_too(sqlite_world: World) -> None:
    client = sqlite_world.client
    auth = sqlite_world.coordinator.auth
    assert client.get("/v1/states", headers=auth).status_code == 200
    flush = wal_flush_of(client.app.state.engine)  # type: ignore[attr-defined]
    assert flush is not None
    flush.wal = Path("/dev/null")  # fsync there fails with EINVAL
    for _ in range(2):
        response = client.get("/v1/states", headers=auth)
        assert response.status_code == 503, response.text
        assert "durable" in response.json()["detail"]
    assert client.get("/readyz").status_code == 503
    assert flush.broken
    with pytest.raises(WalFlushFailed):
        flush.flush(flush.committed())


def test_a_flush_interrupted_by_anything_else_lets_the_next_one_flush(tmp_path: Path) -> None:
    """Not only an OSError ends a fsync (a KeyboardInterrupt in the thread, say): the
    flush must not stay "in progress" for ever, with every later commit waiting on it."""
    Path(f"{tmp_path / 'db'}-wal").write_bytes(b"frames")
    flush = WalFlush(tmp_path / "db")
    real = flush._fsync

    def interrupted() -> None:
        raise RuntimeError("interrupted")

    flush._fsync = interrupted  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        flush.flush(flush.committed())
    flush._fsync = real  # type: ignore[method-assign]
    later = threading.Thread(target=flush.flush, args=(flush.committed(),))
    later.start()
    later.join(10)
    assert not later.is_alive()
    assert (flush.durable, flush.broken) == (2, False)


def _commit_pages(engine: Engine, pages: int) -> None:
    """One transaction that writes about ``pages`` new pages (4 KB blobs in a scratch table)."""
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS scratch (data BLOB)")
        conn.exec_driver_sql(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
            "INSERT INTO scratch SELECT randomblob(4000) FROM n", (pages,))


def _sizes(sqlite_url: str) -> tuple[int, int]:
    database = Path(str(make_url(sqlite_url).database))
    return database.stat().st_size, Path(f"{database}-wal").stat().st_size


def test_the_serving_engine_checkpoints_its_wal_every_ten_thousand_pages(
        sqlite_url: str, served: Engine) -> None:
    """Not at SQLite's default of 1,000: a checkpoint holds the process's only connection
    while it copies pages and syncs the file, and a page changed by many commits in
    between is copied once (docs/adr/0044). Still bounded: at 10,000 pages it runs."""
    _commit_pages(served, 3000)
    database, wal = _sizes(sqlite_url)
    assert wal > 3000 * 4096, "the pages are in the WAL"
    assert database < 1000 * 4096, "and not yet copied into the database file"
    _commit_pages(served, 8000)
    database, _ = _sizes(sqlite_url)
    assert database > 11000 * 4096, "past 10,000 pages the WAL was checkpointed"


def test_other_engines_keep_sqlites_checkpoint(sqlite_url: str) -> None:
    plain = make_engine(sqlite_url)
    try:
        _commit_pages(plain, 3000)
        database, _ = _sizes(sqlite_url)
        assert database > 3000 * 4096
    finally:
        plain.dispose()
