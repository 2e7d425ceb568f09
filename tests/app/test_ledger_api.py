"""The ledger endpoints: a public checkpoint and key; auditors read entries and proofs."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from ledger import (
    CorruptLedgerError,
    NoteVerifier,
    leaf_hash,
    open_checkpoint,
    parse_entry,
    verify_consistency,
    verify_inclusion,
)
from tests.app.conftest import World, sign_checkpoint_now


def _checkpoint(world: World) -> tuple[NoteVerifier, int, bytes]:
    key = world.client.get("/v1/ledger/key")
    assert key.status_code == 200
    assert key.headers["content-type"].startswith("text/plain")
    verifier = NoteVerifier.from_string(key.text.strip())
    note = world.client.get("/v1/ledger/checkpoint")
    assert note.status_code == 200
    checkpoint = open_checkpoint(note.text, verifier)
    assert checkpoint.origin == world.settings.ledger_origin
    return verifier, checkpoint.size, checkpoint.root


def test_no_checkpoint_before_the_first_signing(world: World) -> None:
    response = world.client.get("/v1/ledger/checkpoint")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"


def test_auditor_verifies_entries_and_proofs_against_the_signed_checkpoint(world: World) -> None:
    auditor = world.liaison("audit", "CO", role="auditor")
    sign_checkpoint_now(world)
    _, size, root = _checkpoint(world)
    page = world.client.get(f"/v1/ledger/entries?start=0&limit={size}", headers=auditor.auth)
    assert page.status_code == 200
    raws = [base64.b64decode(item["entry"]) for item in page.json()["entries"]][:size]
    assert [parse_entry(raw).index for raw in raws] == list(range(size))
    assert world.last_entry().action == "ledger.entries"
    for index in (0, size // 2, size - 1):
        proof = world.client.get(f"/v1/ledger/proofs/inclusion?index={index}&size={size}",
                                 headers=auditor.auth).json()
        assert proof["tree_size"] == size
        verify_inclusion(leaf_hash(raws[index]), index, size,
                         [bytes.fromhex(h) for h in proof["proof"]], root=root)
    world.state("MX")
    sign_checkpoint_now(world)
    _, new_size, new_root = _checkpoint(world)
    response = world.client.get(f"/v1/ledger/proofs/consistency?from={size}&to={new_size}",
                                headers=auditor.auth)
    body = response.json()
    assert (body["from"], body["to"]) == (size, new_size)
    verify_consistency(size, new_size, root, new_root,
                       proof=[bytes.fromhex(h) for h in body["proof"]])


def test_proofs_only_for_signed_sizes(world: World) -> None:
    auditor = world.liaison("audit", "CO", role="auditor")
    sign_checkpoint_now(world)
    _, size, _ = _checkpoint(world)
    response = world.client.get(f"/v1/ledger/proofs/inclusion?index=0&size={size - 1}",
                                headers=auditor.auth)
    assert response.status_code == 404
    assert response.json()["type"].endswith("/no-checkpoint")


def test_consistency_from_zero_is_refused(world: World) -> None:
    auditor = world.liaison("audit", "CO", role="auditor")
    response = world.client.get("/v1/ledger/proofs/consistency?from=0&to=1", headers=auditor.auth)
    assert response.status_code == 422


def test_index_out_of_range_is_a_problem(world: World) -> None:
    auditor = world.liaison("audit", "CO", role="auditor")
    response = world.client.get("/v1/ledger/proofs/inclusion?index=5&size=5",
                                headers=auditor.auth)
    assert response.status_code == 400


def test_prosecutor_cannot_read_the_ledger_and_is_logged(world: World) -> None:
    alice = world.liaison("alice", "CO")
    response = world.client.get("/v1/ledger/entries", headers=alice.auth)
    assert response.status_code == 403
    entry = world.last_entry()
    assert (entry.action, entry.outcome) == ("ledger.entries", "denied")


# -- GET /v1/ledger/checkpoints: the signed sizes, for outside tools (issue 18, item 5) --


def test_auditor_lists_every_signed_checkpoint_oldest_first_in_pages(world: World) -> None:
    auditor = world.liaison("audit", "CO", role="auditor")
    verifier, _, _ = _checkpoint_after_signing(world)
    for code in ("MX", "GT"):
        world.state(code)
        sign_checkpoint_now(world)
    listed: list[dict[str, Any]] = []
    after = 0
    while True:
        response = world.client.get(f"/v1/ledger/checkpoints?after={after}&limit=2",
                                    headers=auditor.auth)
        assert response.status_code == 200
        body = response.json()
        listed += body["checkpoints"]
        assert world.last_entry().action == "ledger.checkpoints"
        if body["next"] is None:
            break
        after = body["next"]
    sizes = [item["size"] for item in listed]
    assert len(sizes) == 3
    assert sizes == sorted(set(sizes))
    for item in listed:
        opened = open_checkpoint(str(item["note"]), verifier)
        assert (opened.size, opened.root.hex()) == (item["size"], item["root"])
        assert str(item["time"]).endswith("Z")
        proof = world.client.get(f"/v1/ledger/proofs/inclusion?index=0&size={item['size']}",
                                 headers=auditor.auth)
        assert proof.status_code == 200  # every listed size has proofs


def test_checkpoint_listing_starts_after_the_given_size(world: World) -> None:
    auditor = world.liaison("audit", "CO", role="auditor")
    _, first, _ = _checkpoint_after_signing(world)
    world.state("MX")
    sign_checkpoint_now(world)
    body = world.client.get(f"/v1/ledger/checkpoints?after={first}",
                            headers=auditor.auth).json()
    assert [item["size"] > first for item in body["checkpoints"]] == [True]
    assert body["next"] is None


def test_non_auditor_cannot_list_checkpoints_and_is_logged(world: World) -> None:
    alice = world.liaison("alice", "CO")
    response = world.client.get("/v1/ledger/checkpoints", headers=alice.auth)
    assert response.status_code == 403
    assert response.json()["reason"] == "wrong-role"
    entry = world.last_entry()
    assert (entry.action, entry.outcome, entry.reason) == ("ledger.checkpoints", "denied",
                                                          "wrong-role")


def _checkpoint_after_signing(world: World) -> tuple[NoteVerifier, int, bytes]:
    sign_checkpoint_now(world)
    return _checkpoint(world)


def test_server_refuses_to_sign_entries_that_do_not_chain(world: World) -> None:
    from sqlalchemy import select, update

    from app.ledger.engine import make_engine
    from app.models.ledger import LEDGER_TABLES

    T = LEDGER_TABLES

    sign_checkpoint_now(world)
    world.state("MX")  # entries after the checkpoint: the ones the next one would sign
    engine = make_engine(world.settings.resolved_database_url())
    try:
        with engine.begin() as conn:
            last = conn.execute(select(T.head.c.size)).scalar_one() - 1
            raw = bytes(conn.execute(select(T.entries.c.entry)
                                     .where(T.entries.c.index == last)).scalar_one())
            at = raw.index(b'"prev":"') + len(b'"prev":"')
            forged = raw[:at] + b"f" * 64 + raw[at + 64:]
            conn.execute(update(T.entries).where(T.entries.c.index == last)
                         .values(entry=forged, leaf_hash=leaf_hash(forged)))
            conn.execute(update(T.head).values(last_leaf_hash=leaf_hash(forged)))
    finally:
        engine.dispose()
    with pytest.raises(CorruptLedgerError, match=f"entry {last} does not link"):
        sign_checkpoint_now(world)
