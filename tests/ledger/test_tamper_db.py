"""Tampering with the ledger's database rows is detected and located, every time.

Each property builds a small ledger through ``Ledger`` over ``SqlStorage``
(a few signed checkpoints), commits it, then changes the rows with plain SQL
the way someone with database access could, bypassing the storage adapter.
``verify_ledger`` must then report the first bad index and the fault kind
that ``ledger.verify.verifier``'s documented rules give for that change, and the
chunked pass, in this process and in worker processes, must agree with the
exact pass (it may only ever answer "clean").

The database is created once per module and backend (and per xdist worker),
and emptied before each hypothesis example.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey
from sqlalchemy import Connection, Engine, delete, insert, select, update

from app.ledger.engine import make_engine
from app.ledger.reader import LedgerReaderOpener
from app.ledger.unit_of_work import make_session_factory, transaction
from app.models.ledger import LEDGER_TABLES
from ledger import (
    GENESIS_PREV,
    Actor,
    Checkpoint,
    EntryDraft,
    EntryFormatError,
    Fault,
    Ledger,
    LedgerReport,
    NoteSigner,
    NoteVerifier,
    encode_entry,
    leaf_hash,
    parse_entry,
    sign_checkpoint,
    verify_ledger,
)
from ledger.sql import SqlStorage
from ledger.verify.parallel import chunked_report
from ledger.verify.walk import walk_ledger
from tests.conftest import fresh_database_url

ORIGIN = "cadena.test/tamper"
SIGNER = NoteSigner(ORIGIN, SigningKey(bytes([1]) * 32))
VERIFIER = NoteVerifier.from_string(SIGNER.verifier_key())
T = LEDGER_TABLES
TAMPER_SETTINGS = settings(
    deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@dataclass(frozen=True)
class Shape:
    """A ledger to build: its size and the sizes at which checkpoints were signed."""

    size: int
    checkpoints: tuple[int, ...]


@st.composite
def shapes(draw: st.DrawFn, min_size: int = 2) -> Shape:
    """Ledgers of 2..40 entries with 1..4 checkpoints at distinct sizes."""
    size = draw(st.integers(min_size, 40))
    sizes = draw(st.lists(st.integers(1, size), min_size=1, max_size=4, unique=True))
    return Shape(size, tuple(sorted(sizes)))


def draft(n: int) -> EntryDraft:
    """Entries of every shape the application writes (granted/denied, details, signature)."""
    denied = n % 5 == 3
    return EntryDraft(
        time=datetime(2026, 11, 22, 8, 0, tzinfo=UTC) + timedelta(seconds=n),
        actor=None if n % 7 == 0 else Actor(liaison=f"co-{n % 3}", key=f"k{n % 2}"),
        action="packet.retrieve" if n % 2 else "packet.submit",
        subject={"id": f"p-{n}", "type": "packet"},
        outcome="denied" if denied else "granted",
        reason="clearance lapsed — renovación pendiente" if denied else None,
        details={"channel": "ch-1", "attempt": n} if n % 3 else {},
        signature="c2lnbmF0dXJl" if n % 4 == 0 else None,
    )


@pytest.fixture(scope="module",
                params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def tamper_db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """One migrated database per backend for the module's properties (``build`` empties it)."""
    return fresh_database_url(request.param, request, tmp_path_factory.mktemp("tamper"))


@pytest.fixture
def engine(tamper_db_url: str) -> Iterator[Engine]:
    """An engine of its own for each property, with a connection pool.

    Pooled, as the service's engines are: each example runs several transactions,
    and a new PostgreSQL connection per transaction (a backend started, its
    caches cold) cost the server about as much CPU as the examples' statements.
    The forked verifier workers never use these connections (they open their own).
    The database is the module's: every example begins by emptying the ledger
    (``build``), and nothing here writes any other table.
    """
    engine = make_engine(tamper_db_url)
    yield engine
    engine.dispose()


def build(engine: Engine, shape: Shape) -> list[bytes]:
    """Empty the ledger tables, then append and checkpoint ``shape``; return the entries."""
    with engine.begin() as conn:
        for table in (T.checkpoints, T.nodes, T.entries):
            conn.execute(delete(table))
        conn.execute(update(T.head).values(size=0, last_leaf_hash=None, checkpoint_seq=0))
    factory = make_session_factory(engine)
    done = 0
    for size in sorted({*shape.checkpoints, shape.size}):
        with transaction(factory) as session:
            ledger = Ledger(SqlStorage(session, T))
            ledger.append_many(draft(n) for n in range(done, size))
            if size in shape.checkpoints:
                assert ledger.checkpoint(SIGNER, ORIGIN) is not None
        done = size
    with engine.connect() as conn:
        rows = conn.execute(select(T.entries.c.entry).order_by(T.entries.c.index)).scalars()
        return [bytes(raw) for raw in rows]


WORKER_EVERY = 10
"""Besides its first example of each fault kind, a property runs every tenth through workers."""
_CALLS = itertools.count()
_WORKERS_RAN: dict[Engine, set[Fault | None]] = {}
"""The fault kinds each property's engine has seen through workers (kept: never reused)."""


def through_workers(engine: Engine, fault: Fault | None) -> bool:
    """Whether this example also runs the chunked pass in worker processes.

    Starting processes for every example is the slow part, so not every
    example does; but every test (its own engine) does, for each fault kind
    it expects (``None``: a clean ledger), and every tenth example besides.
    """
    seen = _WORKERS_RAN.setdefault(engine, set())
    first = fault not in seen
    seen.add(fault)
    return next(_CALLS) % WORKER_EVERY == 0 or first


def verify(engine: Engine, fault: Fault | None = None) -> LedgerReport:
    """Verify the committed ledger through a fresh session, every way there is.

    The exact pass's report, after checking that the chunked pass agrees with
    it in this process (chunks of 1, 2, 4 and 8 leaves: every boundary a small
    ledger has) and, for the examples :func:`through_workers` picks (``fault``:
    the kind the caller expects), in two worker processes with readers of
    their own, and that on an untouched ledger the chunked pass itself says clean.
    """
    opener = LedgerReaderOpener(engine.url.render_as_string(hide_password=False))
    with transaction(make_session_factory(engine)) as session:
        storage = SqlStorage(session, T)
        exact = walk_ledger(storage, VERIFIER)
        for bits in (0, 1, 2, 3):
            assert verify_ledger(storage, VERIFIER, chunk_bits=bits) == exact, bits
            assert (chunked_report(storage, VERIFIER, bits=bits) is not None) == exact.ok
        if through_workers(engine, fault):
            # What verify_ledger(..., workers=2) does, with the chunked answer checked apart.
            via_workers = chunked_report(storage, VERIFIER, bits=1, opener=opener, workers=2)
            assert (via_workers is not None) == exact.ok
            assert via_workers in (None, exact)
        assert verify_ledger(storage, VERIFIER) == exact
        return exact


def assert_found(engine: Engine, index: int, fault: Fault) -> None:
    """The verifier reports exactly this first bad index and fault."""
    report = verify(engine, fault)
    assert (report.ok, report.first_bad_index, report.fault) == (False, index, fault), report


def rewrite_entries(conn: Connection, entries: list[bytes]) -> None:
    """Replace the whole entries table (and the head's size) with ``entries``."""
    conn.execute(delete(T.entries))
    rows = [
        {"index": i, "entry": raw, "leaf_hash": leaf_hash(raw)} for i, raw in enumerate(entries)
    ]
    conn.execute(insert(T.entries), rows)
    conn.execute(update(T.head).values(size=len(entries)))


# -- entries -------------------------------------------------------------------


@TAMPER_SETTINGS
@given(shape=shapes(), data=st.data())
def test_flipped_entry_bit_is_a_modified_or_malformed_entry(
    engine: Engine, shape: Shape, data: st.DataObject
) -> None:
    entries = build(engine, shape)
    i = data.draw(st.integers(0, shape.size - 1), label="index")
    pos = data.draw(st.integers(0, len(entries[i]) - 1), label="byte")
    bit = data.draw(st.integers(0, 7), label="bit")
    changed = bytearray(entries[i])
    changed[pos] ^= 1 << bit
    with engine.begin() as conn:
        conn.execute(update(T.entries).where(T.entries.c.index == i).values(entry=bytes(changed)))
    try:
        parse_entry(bytes(changed))
        expected = Fault.MODIFIED_ENTRY
    except EntryFormatError:
        expected = Fault.MALFORMED_ENTRY
    assert_found(engine, i, expected)


@TAMPER_SETTINGS
@given(shape=shapes(), data=st.data())
def test_deleted_entry_row_is_a_missing_entry(
    engine: Engine, shape: Shape, data: st.DataObject
) -> None:
    build(engine, shape)
    i = data.draw(st.integers(0, shape.size - 1), label="index")
    with engine.begin() as conn:
        conn.execute(delete(T.entries).where(T.entries.c.index == i))
    last_is_signed = i == shape.size - 1 and shape.size in shape.checkpoints
    # Deleting the last entry under a checkpoint of that size is a truncation.
    assert_found(engine, i, Fault.TRUNCATED if last_is_signed else Fault.MISSING_ENTRY)


@TAMPER_SETTINGS
@given(shape=shapes(), data=st.data())
def test_replayed_copy_of_an_earlier_entry_is_an_inserted_entry(
    engine: Engine, shape: Shape, data: st.DataObject
) -> None:
    entries = build(engine, shape)
    at = data.draw(st.integers(1, shape.size), label="position")
    source = data.draw(st.integers(0, at - 1), label="copied")
    with engine.begin() as conn:
        rewrite_entries(conn, entries[:at] + [entries[source]] + entries[at:])
    assert_found(engine, at, Fault.INSERTED)


@TAMPER_SETTINGS
@given(shape=shapes(), data=st.data())
def test_swapped_entries_are_reordered(engine: Engine, shape: Shape, data: st.DataObject) -> None:
    entries = build(engine, shape)
    i = data.draw(st.integers(0, shape.size - 2), label="first")
    j = data.draw(st.integers(i + 1, shape.size - 1), label="second")
    with engine.begin() as conn:
        for index, raw in ((i, entries[j]), (j, entries[i])):
            conn.execute(update(T.entries).where(T.entries.c.index == index).values(entry=raw))
    assert_found(engine, i, Fault.REORDERED)


@TAMPER_SETTINGS
@given(shape=shapes(), data=st.data())
def test_forged_entry_that_links_correctly_is_an_inserted_entry(
    engine: Engine, shape: Shape, data: st.DataObject
) -> None:
    entries = build(engine, shape)
    at = data.draw(st.integers(0, shape.size), label="position")
    prev = GENESIS_PREV if at == 0 else leaf_hash(entries[at - 1])
    forged = encode_entry(draft(1000 + at), at, prev)
    with engine.begin() as conn:
        rewrite_entries(conn, entries[:at] + [forged] + entries[at:])
    assert_found(engine, at, Fault.INSERTED)


@TAMPER_SETTINGS
@given(shape=shapes(min_size=3), data=st.data())
def test_truncation_below_a_signed_checkpoint_is_reported(
    engine: Engine, shape: Shape, data: st.DataObject
) -> None:
    build(engine, shape)
    keep = data.draw(st.integers(0, shape.checkpoints[-1] - 1), label="kept")
    with engine.begin() as conn:
        conn.execute(delete(T.entries).where(T.entries.c.index >= keep))
        conn.execute(delete(T.nodes).where(T.nodes.c.last_leaf >= keep))
        conn.execute(update(T.head).values(size=keep))
    assert_found(engine, keep, Fault.TRUNCATED)


# -- tree nodes ------------------------------------------------------------------


def stored_nodes(engine: Engine) -> list[tuple[int, int]]:
    """Every stored node key, in storage order."""
    with engine.connect() as conn:
        rows = conn.execute(select(T.nodes.c.level, T.nodes.c.index).order_by(T.nodes.c.last_leaf))
        return [(int(level), int(index)) for level, index in rows]


def expected_node_fault(shape: Shape, level: int, index: int, deleted: bool) -> Fault:
    """What the verifier's rules say about a wrong or missing stored node."""
    if level > 0 or index < shape.size - 1:
        return Fault.BAD_NODE  # recomputed from attested entries
    if deleted:
        return Fault.INSERTED  # the last entry has no leaf in the tree at all
    if index % 2 == 1 or shape.size in shape.checkpoints:
        return Fault.BAD_NODE  # the parent node or a checkpoint attests the entry
    return Fault.MODIFIED_ENTRY  # nothing but the changed leaf speaks for the last entry


@TAMPER_SETTINGS
@given(shape=shapes(), data=st.data(), deleted=st.booleans())
def test_changed_or_deleted_node_is_a_bad_node_at_its_first_leaf(
    engine: Engine, shape: Shape, data: st.DataObject, deleted: bool
) -> None:
    build(engine, shape)
    level, index = data.draw(st.sampled_from(stored_nodes(engine)), label="node")
    where = (T.nodes.c.level == level) & (T.nodes.c.index == index)
    with engine.begin() as conn:
        if deleted:
            conn.execute(delete(T.nodes).where(where))
        else:
            value = conn.execute(select(T.nodes.c.hash).where(where)).scalar_one()
            changed = bytes([value[0] ^ 0x80]) + bytes(value[1:])
            conn.execute(update(T.nodes).where(where).values(hash=changed))
    assert_found(engine, index << level, expected_node_fault(shape, level, index, deleted))


# -- checkpoints ---------------------------------------------------------------


@TAMPER_SETTINGS
@given(shape=shapes(), data=st.data())
def test_edited_checkpoint_note_is_a_bad_signature(
    engine: Engine, shape: Shape, data: st.DataObject
) -> None:
    build(engine, shape)
    size = data.draw(st.sampled_from(shape.checkpoints), label="checkpoint")
    with engine.begin() as conn:
        where = T.checkpoints.c.size == size
        note = conn.execute(select(T.checkpoints.c.note).where(where)).scalar_one()
        body_end = note.index("\n\n")
        pos = data.draw(st.integers(0, body_end - 1), label="position")
        letters = "abcXYZ019/+="
        char = data.draw(st.sampled_from([c for c in letters if c != note[pos]]), label="char")
        edited = note[:pos] + char + note[pos + 1 :]
        conn.execute(update(T.checkpoints).where(where).values(note=edited))
    assert_found(engine, size - 1, Fault.BAD_CHECKPOINT_SIGNATURE)


@TAMPER_SETTINGS
@given(shape=shapes(), data=st.data())
def test_checkpoint_root_column_differing_from_its_note_is_a_root_mismatch(
    engine: Engine, shape: Shape, data: st.DataObject
) -> None:
    build(engine, shape)
    size = data.draw(st.sampled_from(shape.checkpoints), label="checkpoint")
    with engine.begin() as conn:
        conn.execute(
            update(T.checkpoints).where(T.checkpoints.c.size == size).values(root=bytes(32))
        )
    assert_found(engine, size - 1, Fault.CHECKPOINT_ROOT_MISMATCH)


@TAMPER_SETTINGS
@given(shape=shapes(), data=st.data())
def test_validly_signed_wrong_root_is_a_mismatch_or_a_fork(
    engine: Engine, shape: Shape, data: st.DataObject
) -> None:
    build(engine, shape)
    size = data.draw(st.sampled_from(shape.checkpoints), label="checkpoint")
    forged_root = bytes(range(32))
    note = sign_checkpoint(Checkpoint(ORIGIN, size, forged_root), SIGNER)
    with engine.begin() as conn:
        conn.execute(
            update(T.checkpoints)
            .where(T.checkpoints.c.size == size)
            .values(root=forged_root, note=note)
        )
    # A later checkpoint that matches the stored tree proves the key signed two views.
    later = size != shape.checkpoints[-1]
    assert_found(engine, size - 1, Fault.FORK if later else Fault.CHECKPOINT_ROOT_MISMATCH)


# -- the untouched ledger ----------------------------------------------------------


@TAMPER_SETTINGS
@given(shape=shapes())
def test_untouched_ledger_verifies(engine: Engine, shape: Shape) -> None:
    build(engine, shape)
    report = verify(engine)
    assert report.ok, report
    assert (report.size, report.checkpoints) == (shape.size, len(shape.checkpoints))
