"""The key directory: any liaison reads any liaison's key entries, each proven, and it is logged."""

from __future__ import annotations

import base64

from ledger import (
    NoteVerifier,
    leaf_hash,
    open_checkpoint,
    parse_entry,
    verify_consistency,
    verify_inclusion,
)
from tests.app.conftest import World, b64, sign_checkpoint_now
from tests.client.kt_support import cosign_latest, register_witness


def _verifier(world: World) -> NoteVerifier:
    return NoteVerifier.from_string(world.client.get("/v1/ledger/key").text.strip())


def test_enrolment_entry_names_the_public_keys(world: World) -> None:
    world.state("MX")
    alice = world.liaison("alice", "MX")
    enrol = next(e for e in world.entries() if e.action == "liaison.enrol"
                 and e.subject == {"type": "liaison", "id": "alice"})
    assert enrol.details["signing_public"] == b64(alice.keys.public.signing)
    assert enrol.details["encryption_public"] == b64(alice.keys.public.encryption)
    assert enrol.details["key_id"] == alice.keys.public.key_id


def test_any_liaison_reads_a_key_entry_with_its_inclusion_proof(world: World) -> None:
    world.state("MX")
    alice, bob = world.liaison("alice", "MX"), world.liaison("bob", "MX")
    sign_checkpoint_now(world)
    response = world.client.get("/v1/directory/alice", headers=bob.auth)
    assert response.status_code == 200, response.text
    body = response.json()
    checkpoint = open_checkpoint(body["checkpoint"], _verifier(world))
    assert body["tree_size"] == checkpoint.size
    [item] = body["entries"]
    raw = base64.b64decode(item["entry"])
    entry = parse_entry(raw)
    assert (entry.action, entry.index, item["index"]) == ("liaison.enrol", item["index"],
                                                          entry.index)
    verify_inclusion(leaf_hash(raw), item["index"], checkpoint.size,
                     [bytes.fromhex(h) for h in item["proof"]], root=checkpoint.root)
    assert item["key"]["key_id"] == alice.keys.public.key_id
    read = world.last_entry()
    assert (read.action, read.subject, read.actor and read.actor.liaison) == (
        "directory.read", {"type": "liaison", "id": "alice"}, "bob")


def test_directory_proves_the_checkpoint_extends_the_size_the_client_saw(world: World) -> None:
    world.state("MX")
    bob = world.liaison("bob", "MX")
    sign_checkpoint_now(world)
    first = world.client.get("/v1/directory/bob", headers=bob.auth).json()
    world.liaison("carol", "MX")
    sign_checkpoint_now(world)
    second = world.client.get("/v1/directory/bob", headers=bob.auth,
                              params={"since": first["tree_size"]}).json()
    old = open_checkpoint(first["checkpoint"], _verifier(world))
    new = open_checkpoint(second["checkpoint"], _verifier(world))
    assert new.size > old.size
    verify_consistency(old.size, new.size, old.root, new.root,
                       proof=[bytes.fromhex(h) for h in second["consistency"]])


def test_directory_needs_a_token_and_a_signed_checkpoint(world: World) -> None:
    assert world.client.get("/v1/directory/coord").status_code == 401
    response = world.client.get("/v1/directory/coord", headers=world.coordinator.auth)
    assert response.status_code == 404
    assert response.json()["type"].endswith("/no-checkpoint")


def test_a_client_may_ask_for_the_newest_checkpoint_its_witnesses_cosigned(
        world: World) -> None:
    world.state("MX")
    bob = world.liaison("bob", "MX")
    register_witness(world)
    sign_checkpoint_now(world)
    cosign_latest(world)
    cosigned = world.client.get("/v1/directory/bob", headers=bob.auth).json()["tree_size"]
    world.liaison("carol", "MX")
    sign_checkpoint_now(world)  # newer, not cosigned yet
    latest = world.client.get("/v1/directory/bob", headers=bob.auth).json()
    witnessed = world.client.get("/v1/directory/bob", headers=bob.auth,
                                 params={"witnessed": 1}).json()
    assert latest["tree_size"] > cosigned
    assert witnessed["tree_size"] == cosigned
    assert "witness.example/kt" in witnessed["checkpoint"]
    none_has_two = world.client.get("/v1/directory/bob", headers=bob.auth,
                                    params={"witnessed": 2}).json()
    assert none_has_two["tree_size"] == latest["tree_size"]
