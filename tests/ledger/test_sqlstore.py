"""The storage contract, run against MemoryStorage and SqlStorage on SQLite and PostgreSQL.

Every test takes the ``store`` fixture: a ``Backend`` giving a storage inside
an open transaction, plus commit/rollback, so the same assertions hold for the
in-memory double and for both databases.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Protocol

import pytest
from sqlalchemy import insert, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from app.ledger.engine import make_engine
from app.ledger.unit_of_work import make_session_factory
from app.models.ledger import LEDGER_TABLES
from ledger import (
    ConflictError,
    LedgerStorage,
    MemoryStorage,
    Node,
    StorageError,
    StoredCheckpoint,
    TreeBuilder,
    merkle,
)
from ledger.sql import SqlStorage
from tests.conftest import fresh_database_url


class Backend(Protocol):
    """A storage under test, in one open transaction at a time."""

    storage: LedgerStorage

    def commit(self) -> None: ...

    def rollback(self) -> None: ...


class SqlBackend:
    """SqlStorage over a real database; a new session after each commit/rollback."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url, poolclass=NullPool)
        self.factory = make_session_factory(self.engine)
        self.session: Session = self.factory()
        self.storage: LedgerStorage = SqlStorage(self.session, LEDGER_TABLES)

    def _renew(self) -> None:
        self.session.close()
        self.session = self.factory()
        self.storage = SqlStorage(self.session, LEDGER_TABLES)

    def commit(self) -> None:
        self.session.commit()
        self._renew()

    def rollback(self) -> None:
        self.session.rollback()
        self._renew()

    def close(self) -> None:
        self.session.close()
        self.engine.dispose()


class MemoryBackend:
    """MemoryStorage with its own transaction snapshot."""

    def __init__(self) -> None:
        self.memory = MemoryStorage()
        self.storage: LedgerStorage = self.memory
        self.memory.begin()

    def commit(self) -> None:
        self.memory.commit()
        self.memory.begin()

    def rollback(self) -> None:
        self.memory.rollback()
        self.memory.begin()


def _sql_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "postgresql":
        request.applymarker(pytest.mark.postgres)
    backend = SqlBackend(fresh_database_url(request.param, request, tmp_path))
    yield backend
    backend.close()


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """The storage under test: in memory, on SQLite, on PostgreSQL."""
    if request.param == "memory":
        yield MemoryBackend()
        return
    yield from _sql_backend(request, tmp_path)


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """SqlStorage only, for guarantees beyond the protocol that the database adds."""
    yield from _sql_backend(request, tmp_path)


def entry_bytes(index: int) -> bytes:
    """Opaque entry bytes (storage never parses them), including non-ASCII and NUL."""
    return f'{{"index":{index},"note":"señal"}}'.encode() + b"\x00" * (index % 3)


def append_leaves(storage: LedgerStorage, count: int) -> list[bytes]:
    """Append ``count`` entries the way the ledger does: lock, build nodes, store."""
    head = storage.lock_head()
    builder = TreeBuilder(head.size, storage.nodes(merkle.frontier(head.size)))
    raws = [entry_bytes(head.size + i) for i in range(count)]
    created: list[tuple[Node, bytes]] = []
    for raw in raws:
        created.extend(builder.append(merkle.leaf_hash(raw)))
    storage.append(head.size, raws, created)
    return raws


def checkpoint_at(storage: LedgerStorage, size: int) -> StoredCheckpoint:
    """A checkpoint record of the current tree at ``size`` (its note is a stand-in)."""
    return StoredCheckpoint(size=size, root=merkle.root(storage, size), note=f"note {size}\n")


def test_appended_entries_read_back_verbatim_after_commit(store: Backend) -> None:
    raws = append_leaves(store.storage, 5) + append_leaves(store.storage, 7)
    store.commit()
    assert store.storage.size() == 12
    assert list(store.storage.entries(0, 12)) == raws
    assert list(store.storage.entries(3, 6)) == raws[3:6]
    assert list(store.storage.entries(10, 99)) == raws[10:]
    assert list(store.storage.entries(12, 20)) == []


def test_head_holds_size_and_last_leaf_hash(store: Backend) -> None:
    assert store.storage.lock_head().size == 0
    assert store.storage.lock_head().last_leaf_hash is None
    raws = append_leaves(store.storage, 3)
    store.commit()
    head = store.storage.lock_head()
    assert (head.size, head.last_leaf_hash) == (3, merkle.leaf_hash(raws[-1]))


def test_every_perfect_node_is_stored_and_read_in_one_batch(store: Backend) -> None:
    raws = append_leaves(store.storage, 13)
    store.commit()
    leaves = [merkle.leaf_hash(raw) for raw in raws]
    keys = [(0, i) for i in range(13)] + [(1, i) for i in range(6)] + [(2, i) for i in range(3)]
    keys += [(3, 0)]
    found = store.storage.nodes(keys + [(3, 1), (4, 0), (0, 13)])
    assert set(found) == set(keys)
    assert [found[(0, i)] for i in range(13)] == leaves
    assert found[(1, 2)] == merkle.node_hash(leaves[4], leaves[5])
    assert found[(3, 0)] == merkle.root(store.storage, 8)


def test_node_lookup_of_many_keys_is_chunked_correctly(store: Backend) -> None:
    append_leaves(store.storage, 600)
    store.commit()
    keys = [(0, i) for i in range(600)] + [(1, i) for i in range(300)]
    assert len(store.storage.nodes(keys)) == 900


def test_nodes_stream_by_last_leaf_covered_then_level(store: Backend) -> None:
    append_leaves(store.storage, 9)
    append_leaves(store.storage, 8)
    store.commit()
    order = [key for key, _ in store.storage.iter_nodes()]
    expected = sorted(order, key=lambda k: (((k[1] + 1) << k[0]) - 1, k[0]))
    assert order == expected
    assert len(order) == 2 * 17 - 2  # n leaves make 2n - popcount(n) perfect subtrees


@pytest.mark.parametrize(("size", "index"), [(1, 0), (2, 1), (7, 3), (31, 30), (33, 0)])
def test_roots_and_proofs_match_a_from_scratch_tree(store: Backend, size: int, index: int) -> None:
    for chunk in (size // 3, size - size // 3):
        append_leaves(store.storage, chunk)
    store.commit()
    reference = MemoryStorage()
    reference.begin()
    append_leaves(reference, size)
    assert merkle.root(store.storage, size) == merkle.root(reference, size)
    assert merkle.inclusion_proof(store.storage, index, size) == merkle.inclusion_proof(
        reference, index, size
    )
    if index:
        expected = merkle.consistency_proof(reference, index, size)
        assert merkle.consistency_proof(store.storage, index, size) == expected


def test_rolled_back_append_leaves_nothing(store: Backend) -> None:
    append_leaves(store.storage, 4)
    store.commit()
    append_leaves(store.storage, 6)
    store.rollback()
    assert store.storage.size() == 4
    assert len(list(store.storage.entries(0, 100))) == 4
    assert len(list(store.storage.iter_nodes())) == 7
    assert store.storage.nodes([(0, 4)]) == {}


def test_append_at_a_stale_index_is_a_conflict(store: Backend) -> None:
    append_leaves(store.storage, 2)
    store.commit()
    with pytest.raises(ConflictError):
        store.storage.append(1, [b"late"], [((0, 1), merkle.leaf_hash(b"late"))])


def test_checkpoints_are_stored_in_ascending_size(store: Backend) -> None:
    append_leaves(store.storage, 10)
    for size in (3, 7, 10):
        store.storage.add_checkpoint(checkpoint_at(store.storage, size))
    store.commit()
    stored = list(store.storage.checkpoints())
    assert [c.size for c in stored] == [3, 7, 10]
    assert stored[1] == checkpoint_at(store.storage, 7)
    assert store.storage.latest_checkpoint() == checkpoint_at(store.storage, 10)


def test_checkpoint_at_finds_exactly_the_stored_sizes(store: Backend) -> None:
    append_leaves(store.storage, 10)
    for size in (3, 7, 10):
        store.storage.add_checkpoint(checkpoint_at(store.storage, size))
    store.commit()
    for size in range(0, 12):
        expected = checkpoint_at(store.storage, size) if size in (3, 7, 10) else None
        assert store.storage.checkpoint_at(size) == expected


def test_no_checkpoint_yet_means_latest_is_none(store: Backend) -> None:
    assert store.storage.latest_checkpoint() is None
    assert list(store.storage.checkpoints()) == []


@pytest.mark.parametrize("size", [4, 6])
def test_checkpoint_not_larger_than_latest_is_a_conflict(store: Backend, size: int) -> None:
    append_leaves(store.storage, 8)
    store.storage.add_checkpoint(checkpoint_at(store.storage, 6))
    store.commit()
    with pytest.raises(ConflictError):
        store.storage.add_checkpoint(checkpoint_at(store.storage, size))
    store.rollback()
    assert [c.size for c in store.storage.checkpoints()] == [6]


def test_checkpoint_beyond_stored_size_is_refused(sql_store: Backend) -> None:
    append_leaves(sql_store.storage, 3)
    with pytest.raises(StorageError):
        sql_store.storage.add_checkpoint(StoredCheckpoint(size=4, root=bytes(32), note="x\n"))


def test_nodes_not_completed_by_the_append_are_refused(sql_store: Backend) -> None:
    with pytest.raises(StorageError):
        sql_store.storage.append(0, [b"a"], [((1, 0), bytes(32))])


def test_checkpoint_note_can_be_replaced_for_cosignatures(store: Backend) -> None:
    append_leaves(store.storage, 3)
    store.storage.add_checkpoint(checkpoint_at(store.storage, 3))
    store.storage.update_checkpoint_note(3, "note 3\n— witness abc\n")
    store.commit()
    latest = store.storage.latest_checkpoint()
    assert latest is not None
    assert latest.note == "note 3\n— witness abc\n"
    with pytest.raises(StorageError):
        store.storage.update_checkpoint_note(2, "nope\n")


def test_entry_rows_written_behind_the_head_still_count_in_size(sql_store: Backend) -> None:
    append_leaves(sql_store.storage, 3)
    sql_store.commit()
    assert isinstance(sql_store, SqlBackend)
    entries = LEDGER_TABLES.entries
    sql_store.session.execute(
        insert(entries).values(index=3, entry=b"stray", leaf_hash=merkle.leaf_hash(b"stray"))
    )
    assert sql_store.storage.size() == 4
    assert sql_store.storage.lock_head().size == 3


def test_stopping_a_stream_early_releases_its_cursor(sql_store: Backend) -> None:
    append_leaves(sql_store.storage, 5)
    sql_store.commit()
    stream = sql_store.storage.entries(0, 5)
    assert isinstance(stream, Generator)
    assert next(stream) == entry_bytes(0)
    stream.close()  # a server-side cursor left open would warn (warnings are errors)
    assert len(list(sql_store.storage.iter_nodes())) == 8


@pytest.mark.postgres
def test_lock_head_blocks_a_second_writer_until_commit(postgres_url: str) -> None:
    first, second = SqlBackend(postgres_url), SqlBackend(postgres_url)
    try:
        first.storage.lock_head()
        second.session.execute(text("SET LOCAL lock_timeout = '200ms'"))
        with pytest.raises(OperationalError, match="lock timeout"):
            second.storage.lock_head()
        second.rollback()
        append_leaves(first.storage, 2)
        first.commit()
        assert second.storage.lock_head().size == 2
    finally:
        first.close()
        second.close()
