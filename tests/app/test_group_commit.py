"""Group commit (docs/adr/0023-group-commit.md): savepoints of one transaction, one COMMIT.

Two requests are put in one group for certain: the first holds the group's
writer until the second is waiting for it. Real databases (SQLite and
PostgreSQL), real ledger appends; the failing COMMIT is a real one, a
deferred foreign key that only COMMIT checks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import sessionmaker

from app.errors import Unavailable
from app.ledger import UnitOfWork, draft, make_engine, make_session_factory, record, storage_for
from app.ledger.route import _in_one_thread
from app.ledger.unit_of_work import GroupCommitFailed, GroupCommitter


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[UnitOfWork]]:
    """Units of work with a group committer, on a fresh migrated database (both backends)."""
    engine = make_engine(db_url)
    with engine.begin() as conn:  # deferred: checked at COMMIT, not at the INSERT
        conn.execute(text("CREATE TABLE fault (id INTEGER PRIMARY KEY, ref INTEGER "
                          "REFERENCES fault (id) DEFERRABLE INITIALLY DEFERRED)"))
    yield make_session_factory(engine, group_commit=True)
    engine.dispose()


def _size(sessions: sessionmaker[UnitOfWork]) -> int:
    with sessions() as session:
        return storage_for(session).size()


def _committer(sessions: sessionmaker[UnitOfWork]) -> GroupCommitter:
    committer = sessions.kw["committer"]
    assert isinstance(committer, GroupCommitter)
    return committer


def _in_one_group(sessions: sessionmaker[UnitOfWork],
                  first: Callable[[UnitOfWork], None],
                  second: Callable[[UnitOfWork], None]) -> list[Any]:
    """Run ``first`` and ``second`` as members of one group; each one's outcome.

    An outcome is None (committed) or the exception its member raised,
    after the group's COMMIT.
    """
    committer = _committer(sessions)
    outcomes: list[Any] = [None, None]
    second_waits = threading.Event()

    def member(n: int, work: Callable[[UnitOfWork], None]) -> None:
        session = sessions()
        try:
            with committer.member(session):
                if n == 0:
                    assert second_waits.wait(30)
                try:
                    work(session)
                    session.commit()
                except Exception:
                    session.rollback()
                    raise
                finally:
                    session.close()
        except Exception as exc:
            outcomes[n] = exc

    threads = [threading.Thread(target=member, args=(0, first))]
    threads[0].start()
    while committer._group is None:  # the first member opened the group
        time.sleep(0.001)
    threads.append(threading.Thread(target=member, args=(1, second)))
    threads[1].start()
    while committer._waiting == 0:  # the second waits for the writer: it joins the group
        time.sleep(0.001)
    second_waits.set()
    for thread in threads:
        thread.join(60)
    return outcomes


def _append(action: str) -> Callable[[UnitOfWork], None]:
    def work(session: UnitOfWork) -> None:
        record(session, draft(None, action, {"type": "packet", "id": action}))
    return work


def test_members_commit_together(sessions: sessionmaker[UnitOfWork]) -> None:
    before = _size(sessions)
    assert _in_one_group(sessions, _append("a"), _append("b")) == [None, None]
    assert _size(sessions) == before + 2


def test_a_failing_member_rolls_back_alone(sessions: sessionmaker[UnitOfWork]) -> None:
    before = _size(sessions)

    def fails(session: UnitOfWork) -> None:
        _append("refused")(session)
        raise ValueError("the member's own error")

    outcomes = _in_one_group(sessions, fails, _append("kept"))
    assert isinstance(outcomes[0], ValueError)
    assert outcomes[1] is None
    with sessions() as session:
        storage = storage_for(session)
        assert storage.size() == before + 1
        (entry,) = storage.entries(before, before + 1)
        assert b"kept" in entry
        assert b"refused" not in entry


def test_a_failing_commit_fails_every_member_and_keeps_nothing(
        sessions: sessionmaker[UnitOfWork]) -> None:
    before = _size(sessions)

    def breaks_the_commit(session: UnitOfWork) -> None:
        _append("doomed")(session)
        session.execute(text("INSERT INTO fault (id, ref) VALUES (1, 999)"))

    outcomes = _in_one_group(sessions, _append("innocent"), breaks_the_commit)
    assert all(isinstance(o, GroupCommitFailed) for o in outcomes), outcomes
    assert _size(sessions) == before
    with sessions() as session:
        assert session.execute(text("SELECT count(*) FROM fault")).scalar_one() == 0
    # The committer recovers: the next group commits.
    assert _in_one_group(sessions, _append("c"), _append("d")) == [None, None]
    assert _size(sessions) == before + 2


def test_a_failing_commit_answers_every_request_503(sessions: sessionmaker[UnitOfWork]) -> None:
    """Through the route's own wrapper: both requests get ``Unavailable`` (503)."""
    committer = _committer(sessions)
    before = _size(sessions)
    second_waits = threading.Event()
    outcomes: list[Any] = [None, None]

    def first(session: UnitOfWork) -> str:
        assert second_waits.wait(30)
        _append("innocent")(session)
        return "first"

    def second(session: UnitOfWork) -> str:
        _append("doomed")(session)
        session.execute(text("INSERT INTO fault (id, ref) VALUES (2, 999)"))
        return "second"

    def request(n: int, endpoint: Callable[[UnitOfWork], str]) -> None:
        try:
            outcomes[n] = _in_one_thread(endpoint)(session=sessions())
        except Exception as exc:
            outcomes[n] = exc

    threads = [threading.Thread(target=request, args=(0, first))]
    threads[0].start()
    while committer._group is None:
        time.sleep(0.001)
    threads.append(threading.Thread(target=request, args=(1, second)))
    threads[1].start()
    while committer._waiting == 0:
        time.sleep(0.001)
    second_waits.set()
    for thread in threads:
        thread.join(60)
    assert all(isinstance(o, Unavailable) and o.status == 503 for o in outcomes), outcomes
    assert _size(sessions) == before
