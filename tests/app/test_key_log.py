"""The key log: every checkpoint carries a tree of all key entries, served to any liaison.

The key log is recomputed here from the ledger's raw entries with the naive
reference tree (``tests.ledger.reference``), so the server's incremental
extension is checked against code it shares nothing with.
"""

from __future__ import annotations

import base64

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.orm import sessionmaker

from app.ledger import (
    UnitOfWork,
    key_log_for,
    make_engine,
    make_session_factory,
    storage_for,
    transaction,
)
from app.ledger.key import load_note_signer
from app.models.ledger import KEY_LOG_TABLES, LEDGER_TABLES
from ledger import (
    ConflictError,
    KeyedCheckpoint,
    KeyLeaf,
    KeyLogHead,
    NoteSigner,
    NoteVerifier,
    decode_key_leaf,
    key_leaves,
    key_log_head,
    open_checkpoint,
    prepare_keyed_checkpoint,
    verify_consistency,
    verify_inclusion,
)
from tests.app.conftest import World, sign_checkpoint_now
from tests.ledger import reference


def _verifier(world: World) -> NoteVerifier:
    return NoteVerifier.from_string(world.client.get("/v1/ledger/key").text.strip())


def _raw_entries(world: World) -> list[bytes]:
    engine = make_engine(world.settings.resolved_database_url())
    try:
        with engine.connect() as conn:
            t = LEDGER_TABLES.entries.c
            return [bytes(r) for r in conn.execute(select(t.entry).order_by(t.index)).scalars()]
    finally:
        engine.dispose()


def _expected(world: World, size: int) -> tuple[list[KeyLeaf], KeyLogHead]:
    leaves = key_leaves(0, _raw_entries(world)[:size])
    hashes = [reference.leaf(leaf.encode()) for leaf in leaves]
    return leaves, KeyLogHead(len(leaves), reference.mth(hashes))


def _latest_head(world: World) -> tuple[int, KeyLogHead]:
    checkpoint = open_checkpoint(world.client.get("/v1/ledger/checkpoint").text, _verifier(world))
    head = key_log_head(checkpoint)
    assert head is not None
    return checkpoint.size, head


def _enrol_some(world: World) -> None:
    world.state("MX")
    world.liaison("alice", "MX")
    world.liaison("bob", "MX")


def test_every_checkpoint_carries_the_key_log_of_every_key_entry(world: World) -> None:
    _enrol_some(world)
    sign_checkpoint_now(world)
    size, head = _latest_head(world)
    leaves, expected = _expected(world, size)
    assert head == expected
    assert {leaf.liaison_id for leaf in leaves} >= {"alice", "bob"}
    world.liaison("carol", "MX")
    sign_checkpoint_now(world)
    size, head = _latest_head(world)
    assert head == _expected(world, size)[1]


def test_any_liaison_scans_the_leaves_and_they_make_the_signed_root(world: World) -> None:
    _enrol_some(world)
    sign_checkpoint_now(world)
    size, head = _latest_head(world)
    alice = world.people["alice"]
    body = world.client.get("/v1/directory/key-log/leaves", headers=alice.auth,
                            params={"start": 0, "limit": 2}).json()
    first = [decode_key_leaf(base64.b64decode(x)) for x in body["leaves"]]
    rest = world.client.get("/v1/directory/key-log/leaves", headers=alice.auth,
                            params={"start": 2}).json()["leaves"]
    scanned = first + [decode_key_leaf(base64.b64decode(x)) for x in rest]
    assert scanned == _expected(world, size)[0]
    assert reference.mth([leaf.hash() for leaf in scanned]) == head.root
    read = world.entries()[-1]
    assert (read.action, read.subject) == ("directory.read", {"type": "key-log",
                                                               "id": "leaves:2"})


def test_directory_entries_come_with_their_key_log_proofs(world: World) -> None:
    _enrol_some(world)
    sign_checkpoint_now(world)
    bob = world.people["bob"]
    body = world.client.get("/v1/directory/alice", headers=bob.auth).json()
    checkpoint = open_checkpoint(body["checkpoint"], _verifier(world))
    head = key_log_head(checkpoint)
    assert head is not None
    [item] = body["entries"]
    leaf = KeyLeaf("alice", item["index"], reference.leaf(base64.b64decode(item["entry"])))
    verify_inclusion(leaf.hash(), item["key_log_index"], head.size,
                     [bytes.fromhex(h) for h in item["key_log_proof"]], root=head.root)


def test_key_log_consistency_is_proven_between_signed_sizes(world: World) -> None:
    _enrol_some(world)
    sign_checkpoint_now(world)
    _, old = _latest_head(world)
    world.liaison("carol", "MX")
    world.liaison("dave", "MX")
    sign_checkpoint_now(world)
    _, new = _latest_head(world)
    bob = world.people["bob"]
    body = world.client.get("/v1/directory/key-log/proofs/consistency", headers=bob.auth,
                            params={"from": old.size, "to": new.size}).json()
    verify_consistency(old.size, new.size, old.root, new.root,
                       proof=[bytes.fromhex(h) for h in body["proof"]])
    answer = world.client.get("/v1/directory/carol", headers=bob.auth,
                              params={"key_since": old.size}).json()
    verify_consistency(old.size, new.size, old.root, new.root,
                       proof=[bytes.fromhex(h) for h in answer["key_consistency"]])
    inclusion = world.client.get("/v1/directory/key-log/proofs/inclusion", headers=bob.auth,
                                 params={"index": 0, "size": new.size}).json()
    first = _expected(world, 10**9)[0][0]
    verify_inclusion(first.hash(), 0, new.size, [bytes.fromhex(h) for h in inclusion["proof"]],
                     root=new.root)


@pytest.mark.parametrize(("path", "params", "status"), [
    ("leaves", {"start": 10**6}, 400),
    ("proofs/inclusion", {"index": 5, "size": 5}, 400),
    ("proofs/inclusion", {"index": 0, "size": 999}, 404),
    ("proofs/consistency", {"from": 3, "to": 2}, 400),
    ("proofs/consistency", {"from": 1, "to": 999}, 404),
])
def test_bad_key_log_ranges_are_problems_and_change_nothing(
        world: World, path: str, params: dict[str, int], status: int) -> None:
    _enrol_some(world)
    sign_checkpoint_now(world)
    bob = world.people["bob"]
    before = len(world.entries())
    response = world.client.get(f"/v1/directory/key-log/{path}", headers=bob.auth,
                                params=params)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert len(world.entries()) == before  # bad input, as the ledger's own proof routes


def test_key_log_needs_an_authenticated_liaison(world: World) -> None:
    assert world.client.get("/v1/directory/key-log/leaves").status_code == 401


def _signer(world: World) -> NoteSigner:
    return load_note_signer(world.settings.resolved_ledger_key_path(),
                            world.settings.ledger_origin)


def _store(sessions: sessionmaker[UnitOfWork], prepared: KeyedCheckpoint) -> None:
    with transaction(sessions) as session:  # as sign_once stores
        storage_for(session).add_checkpoint(prepared.checkpoint)
        key_log_for(session).store(prepared)


def test_a_checkpointer_that_lost_the_race_leaves_no_key_log_row(world: World) -> None:
    # Two API processes prepare from the same key-log base: one stores a
    # smaller checkpoint first; the other's checkpoint is still larger (the
    # checkpoint's own compare-and-swap lets it pass) but its key log was
    # extended from a base that moved: refused, and its transaction rolled back.
    _enrol_some(world)
    sign_checkpoint_now(world)
    world.liaison("dave", "MX")
    engine = make_engine(world.settings.resolved_database_url())
    sessions, origin, signer = make_session_factory(engine), world.settings.ledger_origin, \
        _signer(world)
    try:
        with transaction(sessions) as session:
            storage = storage_for(session)
            small = prepare_keyed_checkpoint(storage, storage.head_size(), signer, origin,
                                             key_log_for(session).base())
        world.liaison("carol", "MX")
        with transaction(sessions) as session:
            storage = storage_for(session)
            large = prepare_keyed_checkpoint(storage, storage.head_size(), signer, origin,
                                             key_log_for(session).base())
        assert small is not None
        assert large is not None
        assert large.leaves
        _store(sessions, small)
        with pytest.raises(ConflictError):
            _store(sessions, large)
        with transaction(sessions) as session:
            assert storage_for(session).latest_checkpoint() == small.checkpoint
            assert key_log_for(session).base().size == small.head.size
    finally:
        engine.dispose()
    sign_checkpoint_now(world)  # the next interval catches up from the stored base
    size, head = _latest_head(world)
    assert head == _expected(world, size)[1]


def test_an_upgraded_database_builds_its_key_log_from_every_entry(world: World) -> None:
    # What migration 0012 leaves: checkpoints signed without the key log and
    # an empty key log at zero entries processed.
    _enrol_some(world)
    sign_checkpoint_now(world)
    engine = make_engine(world.settings.resolved_database_url())
    try:
        with engine.begin() as conn:
            for table in (KEY_LOG_TABLES.leaves, KEY_LOG_TABLES.nodes,
                          KEY_LOG_TABLES.checkpoints):
                conn.execute(delete(table))
            conn.execute(update(KEY_LOG_TABLES.head).values(ledger_size=0, size=0))
    finally:
        engine.dispose()
    world.liaison("carol", "MX")
    sign_checkpoint_now(world)
    size, head = _latest_head(world)
    leaves, expected = _expected(world, size)
    assert head == expected
    assert {"alice", "bob", "carol"} <= {leaf.liaison_id for leaf in leaves}
