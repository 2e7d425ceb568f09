"""PostgreSQL's short append path (``ledger.sql.pipeline``): the same rows, fewer round trips.

The lock comes with the frontier nodes of the head's size, read after the lock
is held (a holder that committed while we waited is seen); the compare-and-swap
and the rows go in one statement that writes nothing when the head moved.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.models.ledger import LEDGER_TABLES
from ledger import ConflictError, MemoryStorage, merkle
from ledger.sql import SqlStorage
from tests.conftest import fresh_database_url
from tests.ledger.test_sqlstore import SqlBackend, append_leaves, entry_bytes

pytestmark = pytest.mark.postgres


@pytest.fixture
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlBackend]:
    """A SqlStorage on a fresh PostgreSQL database."""
    backend = SqlBackend(fresh_database_url("postgresql", request, tmp_path))
    yield backend
    backend.close()


def test_frontier_read_with_the_lock_is_the_merkle_frontier(backend: SqlBackend) -> None:
    memory = MemoryStorage()
    memory.begin()
    for size in [*range(1, 40), 63, 64, 65, 100, 127, 128, 129]:
        append_leaves(backend.storage, size - backend.storage.size())
        append_leaves(memory, size - memory.size())
        backend.commit()
        head = backend.storage.lock_head()
        wanted = merkle.frontier(head.size)
        assert dict(backend.storage.nodes(wanted)) == dict(memory.nodes(wanted)), size
        backend.rollback()


def test_append_under_the_lock_makes_no_node_lookup_of_its_own(
        backend: SqlBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    append_leaves(backend.storage, 11)
    backend.commit()
    lookups: list[object] = []

    def lookup(self: SqlStorage, *args: object) -> list[object]:
        lookups.append(args)
        return []

    monkeypatch.setattr(SqlStorage, "_rows", lookup)
    append_leaves(backend.storage, 1)  # the frontier came with the lock
    assert lookups == []
    monkeypatch.undo()
    backend.commit()
    assert list(backend.storage.entries(0, 99)) == [entry_bytes(i) for i in range(12)]


def test_a_stale_append_writes_no_row(backend: SqlBackend) -> None:
    append_leaves(backend.storage, 3)
    backend.commit()
    with pytest.raises(ConflictError):
        backend.storage.append(1, [b"late"], [((0, 1), merkle.leaf_hash(b"late"))])
    nodes = LEDGER_TABLES.nodes
    count = backend.session.execute(select(func.count()).select_from(nodes)).scalar_one()
    assert count == 4  # 3 leaves and one level-1 node: the stale rows never went in
    assert backend.storage.size() == 3


def test_a_waiting_appender_builds_on_the_nodes_the_holder_committed(
        backend: SqlBackend, request: pytest.FixtureRequest) -> None:
    append_leaves(backend.storage, 5)
    backend.commit()
    second = SqlBackend(str(backend.engine.url.render_as_string(hide_password=False)))
    try:
        backend.storage.lock_head()
        done = threading.Event()

        def wait_and_append() -> None:
            append_leaves(second.storage, 1)  # waits for the lock, then reads the frontier
            second.commit()
            done.set()

        worker = threading.Thread(target=wait_and_append)
        worker.start()
        assert not done.wait(0.3)  # blocked on the head lock
        append_leaves(backend.storage, 2)  # completes nodes the waiter's frontier needs
        backend.commit()
        worker.join(timeout=10)
        assert done.is_set()
    finally:
        second.close()
    memory = MemoryStorage()
    memory.begin()
    append_leaves(memory, 8)
    stored = SqlStorage(backend.session, LEDGER_TABLES)
    assert merkle.root(stored, 8) == merkle.root(memory, 8)
    assert dict(stored.iter_nodes()) == dict(memory.iter_nodes())
