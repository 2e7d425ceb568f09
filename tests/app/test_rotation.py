"""Key rotation needs the keys: signed by the current key, with possession of the new ones.

A bearer token alone must never change a liaison's identity (DESIGN.md,
Authentication; docs/protocol.md §9). Every refusal is a denied ``key.rotate``
entry and changes nothing: the liaison keeps their key and their token.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from app.ledger.engine import make_engine
from app.liaisons.rotation import entry_details
from app.models.rotation import KeyRotationChallenge
from crypto import (
    KEY_ROTATION_TYPE,
    LiaisonKeys,
    LiaisonPublicKeys,
    RotationStatement,
    SignedRotation,
    sign,
    verify_signature,
)
from ledger import Actor, EntryDraft, encode_entry, parse_entry
from tests.app.conftest import Person, World, b64
from tests.app.rotation_support import post_rotation, rotate, rotation_body, rotation_challenge
from tests.app.test_packets_support import assert_denied, execute

REFUSED = (403, "rotation-refused", "key.rotate")


def _keys(world: World, person: Person) -> list[dict[str, Any]]:
    keys = world.client.get(f"/v1/liaisons/{person.id}/keys", headers=person.auth)
    assert keys.status_code == 200, keys.text  # the token works
    return list(keys.json())


def _refused(world: World, person: Person, body: dict[str, Any], reason: str) -> None:
    """Refused and logged as the person's own act, and nothing changed: keys, token."""
    before = _keys(world, person)
    assert before[0]["key_id"] == person.keys.public.key_id
    assert_denied(world, post_rotation(world, person, body), *REFUSED, reason)
    assert world.last_entry().actor == Actor(liaison=person.id, key=person.keys.public.key_id)
    assert _keys(world, person) == before


def test_rotation_with_a_token_alone_is_refused_and_logged(world: World) -> None:
    alice, new = world.liaison("alice", "CO"), LiaisonKeys.generate()
    old_shape = {"signing_public": b64(new.public.signing),
                 "encryption_public": b64(new.public.encryption)}
    _refused(world, alice, old_shape, "rotation-proofs-missing")


@pytest.mark.parametrize("signer", ["another liaison", "a random key"])
def test_rotation_signed_by_another_key_is_refused_and_logged(world: World, signer: str) -> None:
    alice, bob = world.liaison("alice", "CO"), world.liaison("bob", "CO")
    key = bob.keys if signer == "another liaison" else LiaisonKeys.generate()
    body = rotation_body(rotation_challenge(world, alice), alice, LiaisonKeys.generate(),
                         signer=key)
    _refused(world, alice, body, "not-signed-by-current-key")


def test_rotation_without_proof_of_the_new_signing_key_is_refused_and_logged(
        world: World) -> None:
    alice, new = world.liaison("alice", "CO"), LiaisonKeys.generate()
    body = rotation_body(rotation_challenge(world, alice), alice, new)
    _refused(world, alice, {k: v for k, v in body.items() if k != "new_key_signature"},
             "rotation-proofs-missing")
    wrong = rotation_body(rotation_challenge(world, alice), alice, new,
                          new_signer=LiaisonKeys.generate())
    _refused(world, alice, wrong, "no-proof-of-possession")


def test_rotation_to_someone_elses_public_keys_is_refused_and_logged(world: World) -> None:
    alice, bob = world.liaison("alice", "CO"), world.liaison("bob", "CO")
    body = rotation_body(rotation_challenge(world, alice), alice, bob.keys,
                         new_signer=alice.keys, box_holder=alice.keys)
    _refused(world, alice, body, "no-proof-of-possession")


def test_rotation_with_a_wrong_x25519_proof_is_refused_and_logged(world: World) -> None:
    alice, new = world.liaison("alice", "CO"), LiaisonKeys.generate()
    body = rotation_body(rotation_challenge(world, alice), alice, new,
                         box_holder=LiaisonKeys.generate())
    _refused(world, alice, body, "no-proof-of-possession")


def test_statement_naming_other_keys_than_the_request_is_refused_and_logged(
        world: World) -> None:
    alice, new, other = world.liaison("alice", "CO"), LiaisonKeys.generate(), LiaisonKeys.generate()
    body = rotation_body(rotation_challenge(world, alice), alice, new)
    body |= {"signing_public": b64(other.public.signing),
             "encryption_public": b64(other.public.encryption)}
    _refused(world, alice, body, "rotation-keys-mismatch")


def test_statement_that_is_not_base64_is_refused_and_logged(world: World) -> None:
    alice = world.liaison("alice", "CO")
    body = rotation_body(rotation_challenge(world, alice), alice, LiaisonKeys.generate())
    _refused(world, alice, {**body, "statement": "AAAAA"}, "rotation-malformed")


@pytest.mark.parametrize("statement", [b"not json", b'{"v":1}', b'{"kind":"cadena-login","v":1}'])
def test_signed_but_malformed_statement_is_refused_and_logged(world: World,
                                                              statement: bytes) -> None:
    alice = world.liaison("alice", "CO")
    body = rotation_body(rotation_challenge(world, alice), alice, LiaisonKeys.generate())
    signature = sign(alice.keys.signing_key, KEY_ROTATION_TYPE, statement)
    _refused(world, alice, {**body, "statement": b64(statement), "signature": b64(signature)},
             "rotation-malformed")


def test_replayed_challenge_is_refused_and_logged(world: World) -> None:
    alice, new = world.liaison("alice", "CO"), LiaisonKeys.generate()
    body = rotation_body(rotation_challenge(world, alice), alice, new)
    assert post_rotation(world, alice, body).status_code == 201
    alice.keys = new
    world.login(alice)
    _refused(world, alice, body, "rotation-challenge-unknown")


def test_expired_challenge_is_refused_and_logged(world: World) -> None:
    alice = world.liaison("alice", "CO")
    body = rotation_body(rotation_challenge(world, alice), alice, LiaisonKeys.generate())
    execute(world, update(KeyRotationChallenge).values(
        expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    _refused(world, alice, body, "rotation-challenge-expired")


def test_another_liaisons_challenge_is_refused_and_logged(world: World) -> None:
    alice, bob = world.liaison("alice", "CO"), world.liaison("bob", "CO")
    bobs = rotation_challenge(world, bob)
    body = rotation_body({**bobs, "liaison_id": "alice"}, alice, LiaisonKeys.generate())
    _refused(world, alice, body, "rotation-challenge-not-yours")


def test_a_new_challenge_replaces_the_liaisons_earlier_one(world: World) -> None:
    alice = world.liaison("alice", "CO")
    first = rotation_challenge(world, alice)
    rotation_challenge(world, alice)
    body = rotation_body(first, alice, LiaisonKeys.generate())
    _refused(world, alice, body, "rotation-challenge-unknown")


def _challenge_rows(world: World) -> int:
    engine = make_engine(world.settings.resolved_database_url())
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(
                KeyRotationChallenge)).scalar_one())
    finally:
        engine.dispose()


def test_used_and_expired_challenges_leave_no_server_secret_behind(world: World) -> None:
    alice, bob = world.liaison("alice", "CO"), world.liaison("bob", "CO")
    rotation_challenge(world, bob)
    execute(world, update(KeyRotationChallenge).values(
        expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    assert rotate(world, alice, LiaisonKeys.generate()).status_code == 201
    assert _challenge_rows(world) == 0


def test_challenge_is_bound_to_the_caller_and_logged(world: World) -> None:
    alice = world.liaison("alice", "CO")
    challenge = rotation_challenge(world, alice)
    assert challenge["liaison_id"] == "alice"
    assert challenge["key_id"] == alice.keys.public.key_id
    assert challenge["origin"] == world.settings.ledger_origin
    assert challenge["payload_type"] == KEY_ROTATION_TYPE
    assert len(base64.b64decode(challenge["nonce"])) == 32
    entry = world.last_entry()
    assert (entry.action, entry.outcome) == ("key.rotate_challenge", "granted")
    assert entry.details == {"challenge": challenge["challenge_id"]}
    anonymous = world.client.post("/v1/liaisons/me/keys/challenge")
    assert anonymous.status_code == 401


def test_honest_rotation_retires_the_old_key_and_records_a_checkable_entry(
        world: World) -> None:
    alice, new = world.liaison("alice", "CO"), LiaisonKeys.generate()
    old = alice.keys.public
    response = rotate(world, alice, new)
    assert response.status_code == 201, response.text
    assert response.json()["key_id"] == new.public.key_id
    entry = world.last_entry()
    assert (entry.action, entry.outcome, entry.subject) == (
        "key.rotate", "granted", {"type": "liaison", "id": "alice"})
    assert entry.actor == Actor(liaison="alice", key=old.key_id)
    _check_entry_alone(entry.details, entry.signature, old, "alice")
    assert world.client.get("/v1/channels", headers=alice.auth).status_code == 401
    alice.keys = new
    world.login(alice)
    keys = world.client.get("/v1/liaisons/alice/keys", headers=alice.auth).json()
    assert [(k["key_id"], k["retired_at"] is None) for k in keys] == [
        (new.public.key_id, True), (old.key_id, False)]


def _check_entry_alone(details: Mapping[str, Any], signature: str | None,
                       old: LiaisonPublicKeys, liaison: str) -> None:
    """What a verifier holding only the ledger checks (docs/protocol.md §9.4)."""
    assert set(details) == {"authorized_by", "key_id", "old_key_id", "fingerprint",
                            "signing_public", "encryption_public", "statement",
                            "statement_sha256", "new_key_signature"}
    statement = base64.b64decode(details["statement"])
    assert hashlib.sha256(statement).hexdigest() == details["statement_sha256"]
    parsed = RotationStatement.from_bytes(statement)
    new = LiaisonPublicKeys(signing=base64.b64decode(details["signing_public"]),
                            encryption=base64.b64decode(details["encryption_public"]))
    assert (parsed.liaison, parsed.old_key_id, parsed.new_keys) == (liaison, old.key_id, new)
    assert (details["authorized_by"], details["old_key_id"], details["key_id"],
            details["fingerprint"]) == ("current_key", old.key_id, new.key_id, new.fingerprint)
    assert signature is not None
    verify_signature(old.signing, KEY_ROTATION_TYPE, statement, base64.b64decode(signature))
    verify_signature(new.signing, KEY_ROTATION_TYPE, statement,
                     base64.b64decode(details["new_key_signature"]))


_PARTS = ("statement", "signature", "new_key_signature", "box_proof")


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(part=st.sampled_from(_PARTS), data=st.data())
def test_flipping_any_byte_of_a_proof_or_the_statement_is_refused(
        world: World, part: str, data: st.DataObject) -> None:
    alice = world.people.get("alice") or world.liaison("alice", "CO")
    honest = _honest_body(world, alice)
    value = base64.b64decode(honest[part])
    index = data.draw(st.integers(0, len(value) - 1), label="index")
    flip = data.draw(st.integers(1, 255), label="xor")
    changed = value[:index] + bytes([value[index] ^ flip]) + value[index + 1:]
    response = post_rotation(world, alice, {**honest, part: b64(changed)})
    assert response.status_code == 403, response.text
    assert (world.last_entry().action, world.last_entry().outcome) == ("key.rotate", "denied")


_BODIES: dict[int, dict[str, str]] = {}


def _honest_body(world: World, alice: Person) -> dict[str, str]:
    """One honest body per world: refusals do not use up its challenge."""
    key = id(world)
    if key not in _BODIES:
        _BODIES[key] = rotation_body(rotation_challenge(world, alice), alice,
                                     LiaisonKeys.generate())
    return _BODIES[key]


def test_after_refusals_the_honest_rotation_still_succeeds(world: World) -> None:
    alice, new = world.liaison("alice", "CO"), LiaisonKeys.generate()
    body = rotation_body(rotation_challenge(world, alice), alice, new)
    for part in _PARTS:
        zeroed = b64(bytes(len(base64.b64decode(body[part]))))
        assert post_rotation(world, alice, {**body, part: zeroed}).status_code == 403
    assert post_rotation(world, alice, body).status_code == 201


def test_documented_key_rotate_entry_is_reproduced_and_checks_from_the_ledger_alone() -> None:
    """The entry in docs/protocol.md §9.4 (tests/vectors/rotation/vectors.json)."""
    vector = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "rotation"
                         / "vectors.json").read_text("utf-8"))["vectors"][0]
    current = LiaisonKeys.from_secret_bytes(bytes.fromhex(vector["inputs"]["current_secret"]))
    new = LiaisonKeys.from_secret_bytes(bytes.fromhex(vector["inputs"]["new_secret"]))
    signed = SignedRotation(vector["statement"].encode(), base64.b64decode(vector["signature"]),
                            base64.b64decode(vector["new_key_signature"]),
                            base64.b64decode(vector["box_proof"]))
    draft = EntryDraft(
        time=datetime(2026, 12, 6, 18, 30, 0, 123456, tzinfo=UTC),
        actor=Actor(liaison="mx-fgr-1", key=current.public.key_id), action="key.rotate",
        subject={"type": "liaison", "id": "mx-fgr-1"}, outcome="granted",
        details=entry_details(signed, current.public.key_id, new.public),
        signature=vector["signature"])
    entry = encode_entry(draft, 41, hashlib.sha256(b"entry 40").digest(), strict=True)
    assert entry == vector["ledger_entry"].encode("utf-8")
    parsed = parse_entry(entry)
    _check_entry_alone(parsed.details, parsed.signature, current.public, "mx-fgr-1")
