"""Several processes append to one ledger while another signs checkpoints.

Each append is its own transaction, as in the API. Whatever the interleaving,
the ledger ends with exactly one entry per append, indices 0..n-1 without
gap or repeat, every entry linking to the previous one, and checkpoints that
are all consistent with each other and with the stored tree.

Nothing here depends on timing. The processes start appending together (a
barrier: spawning and importing take seconds on a loaded machine), and each
writer waits at its halfway point until the checkpointer has stored a
checkpoint: SQLite's busy handler is not fair, so without that rendezvous the
checkpointer could be kept from the write lock until every append was done,
and sign the whole tree once. Every wait is bounded and fails the test.
"""

from __future__ import annotations

import json
import multiprocessing
from collections import Counter
from datetime import UTC, datetime
from multiprocessing.synchronize import Barrier, Event

import pytest
from nacl.signing import SigningKey
from sqlalchemy.pool import NullPool

from app.ledger.engine import make_engine
from app.ledger.unit_of_work import make_session_factory, transaction
from app.models.ledger import LEDGER_TABLES
from ledger import (
    Actor,
    EntryDraft,
    Ledger,
    NoteSigner,
    NoteVerifier,
    merkle,
    open_checkpoint,
    parse_entry,
    verify_ledger,
)
from ledger.sql import SqlStorage

WRITERS = 4
APPENDS_PER_WRITER = 50
WAIT = 120.0
"""Seconds any process waits for another before it gives up (a failure, not a skip)."""
ORIGIN = "cadena.test/concurrency"
SEED = bytes([1]) * 32  # see the report: NoteVerifier.from_string and "+" in keys


def _draft(writer: int, seq: int) -> EntryDraft:
    return EntryDraft(
        time=datetime.now(UTC),
        actor=Actor(liaison=f"liaison-{writer}", key=f"key-{writer}"),
        action="packet.retrieve",
        subject={"type": "packet", "id": f"{writer}-{seq}"},
        outcome="granted",
        details={"writer": writer, "seq": seq},
    )


def append_worker(url: str, writer: int, count: int, start: Barrier, signed: Event) -> None:
    """Append ``count`` entries, one transaction each (runs in a child process).

    Starts with the others (``start``); after the first half, waits until a
    checkpoint has been ``signed``, so that one lies strictly inside the run.
    """
    engine = make_engine(url, poolclass=NullPool)
    factory = make_session_factory(engine)
    try:
        start.wait(WAIT)
        for seq in range(count):
            if seq == count // 2 and not signed.wait(WAIT):
                raise TimeoutError(f"no checkpoint signed in {WAIT} s")
            with transaction(factory) as session:
                Ledger(SqlStorage(session, LEDGER_TABLES)).append(_draft(writer, seq))
    finally:
        engine.dispose()


def checkpoint_worker(url: str, start: Barrier, signed: Event, stop: Event) -> None:
    """Sign checkpoints in a loop until ``stop`` is set, then once more (child process).

    Sets ``signed`` once a checkpoint has been stored.
    """
    engine = make_engine(url, poolclass=NullPool)
    factory = make_session_factory(engine)
    signer = NoteSigner(ORIGIN, SigningKey(SEED))
    try:
        start.wait(WAIT)
        while True:
            done = stop.is_set()
            with transaction(factory) as session:
                stored = Ledger(SqlStorage(session, LEDGER_TABLES)).checkpoint(signer, ORIGIN)
            if stored is not None:
                signed.set()
            if done:
                return
            stop.wait(0.01)  # pacing only: how often it signs changes no assertion
    finally:
        engine.dispose()


def _run_workers(url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    start, signed, stop = ctx.Barrier(WRITERS + 1), ctx.Event(), ctx.Event()
    checkpointer = ctx.Process(target=checkpoint_worker, args=(url, start, signed, stop))
    writers = [
        ctx.Process(target=append_worker,
                    args=(url, writer, APPENDS_PER_WRITER, start, signed))
        for writer in range(WRITERS)
    ]
    processes = [*writers, checkpointer]
    try:
        for process in processes:
            process.start()
        for process in writers:
            process.join(timeout=300)
        stop.set()
        checkpointer.join(timeout=60)
        for process in processes:
            assert process.exitcode == 0, f"{process.name} failed with {process.exitcode}"
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join()


@pytest.mark.slow
def test_concurrent_appenders_and_checkpointer_leave_one_consistent_ledger(db_url: str) -> None:
    _run_workers(db_url)

    verifier = NoteVerifier.from_string(NoteSigner(ORIGIN, SigningKey(SEED)).verifier_key())
    engine = make_engine(db_url, poolclass=NullPool)
    try:
        with transaction(make_session_factory(engine)) as session:
            storage = SqlStorage(session, LEDGER_TABLES)
            report = verify_ledger(storage, verifier)
            entries = [parse_entry(raw) for raw in storage.entries(0, storage.size())]
            checkpoints = list(storage.checkpoints())
            roots = {c.size: merkle.root(storage, c.size) for c in checkpoints}
    finally:
        engine.dispose()

    total = WRITERS * APPENDS_PER_WRITER
    assert report.ok, report.detail
    assert report.size == total
    assert [entry.index for entry in entries] == list(range(total))
    written = Counter(json.dumps(dict(entry.details), sort_keys=True) for entry in entries)
    assert len(written) == total
    assert set(written.values()) == {1}
    assert any(0 < stored.size < total for stored in checkpoints)  # signed amid the appends
    assert checkpoints[-1].size == total
    for stored in checkpoints:
        opened = open_checkpoint(stored.note, verifier)
        assert (
            (opened.size, opened.root)
            == (stored.size, stored.root)
            == (
                stored.size,
                roots[stored.size],
            )
        )
