"""The SDK rotates keys with the keys: a checked challenge, a signed statement, two proofs."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from client import Client, NotLoggedIn
from client.errors import EXIT_REFUSED, BadChallenge
from client.models import RotationChallenge
from client.profile import Profile
from client.rotation import rotation_body
from crypto import (
    KEY_ROTATION_TYPE,
    LiaisonKeys,
    LiaisonPublicKeys,
    RotationStatement,
    SignedRotation,
    save_keys,
    server_box_secret,
    verify_rotation,
)
from crypto import RotationChallenge as ServerChallenge
from crypto.signing import RECEIPT_TYPE
from ledger import Actor
from tests.app.conftest import World
from tests.client.conftest import BASE_URL, Cli, sdk_for

NOW = datetime(2026, 12, 6, 18, 0, tzinfo=UTC)
CURRENT, NEW = LiaisonKeys.generate(), LiaisonKeys.generate()
SERVER = ServerChallenge("test.cadena/ledger", "ana", "ab" * 16, bytes(range(32)),
                         server_box_secret())


def _challenge(**changes: Any) -> RotationChallenge:
    fields: dict[str, Any] = {
        "challenge_id": SERVER.challenge, "liaison_id": "ana", "key_id": CURRENT.public.key_id,
        "nonce": base64.b64encode(SERVER.nonce).decode(),
        "server_box": base64.b64encode(SERVER.server_box).decode(),
        "origin": SERVER.origin, "payload_type": KEY_ROTATION_TYPE,
        "expires_at": NOW + timedelta(minutes=1)}
    return RotationChallenge(**(fields | changes))


def test_rotation_body_verifies_on_the_servers_side() -> None:
    body = rotation_body(_challenge(), "ana", CURRENT, NEW, now=NOW, origin=SERVER.origin)
    signed = SignedRotation(*(base64.b64decode(body[k]) for k in (
        "statement", "signature", "new_key_signature", "box_proof")))
    statement = verify_rotation(signed, CURRENT.public, SERVER)
    assert statement == RotationStatement.from_bytes(signed.statement)
    assert (statement.old_key_id, statement.new_keys) == (CURRENT.public.key_id, NEW.public)
    assert body["signing_public"] == base64.b64encode(NEW.public.signing).decode()


def test_private_keys_never_leave_the_client() -> None:
    text = json.dumps(rotation_body(_challenge(), "ana", CURRENT, NEW, now=NOW))
    for keys in (CURRENT, NEW):
        secret = keys.secret_bytes()
        for part in (secret[:32], secret[32:]):
            assert base64.b64encode(part).decode() not in text
            assert part.hex() not in text


@pytest.mark.parametrize(("changes", "message"), [
    ({"payload_type": RECEIPT_TYPE}, "not a key rotation"),
    ({"liaison_id": "bob"}, "is for 'bob'"),
    ({"key_id": NEW.public.key_id}, "another current key set"),
    ({"origin": "evil.example/ledger"}, "origin"),
    ({"expires_at": NOW - timedelta(minutes=5)}, "expired"),
    ({"nonce": "AAAA"}, "nonce is not 32 bytes"),
    ({"server_box": "!!"}, "server_box is not base64"),
    ({"server_box": base64.b64encode(bytes(32)).decode()}, "cannot be signed"),
])
def test_bad_rotation_challenge_is_never_signed(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(BadChallenge, match=message):
        rotation_body(_challenge(**changes), "ana", CURRENT, NEW, now=NOW,
                      origin=SERVER.origin)


def test_sdk_rotation_is_accepted_and_the_session_continues_with_the_new_keys(
        world: World) -> None:
    alice = world.liaison("alice", "CO")
    client = sdk_for(world, alice)
    new = LiaisonKeys.generate()
    info = client.liaisons.rotate(new)
    assert info.key_id == new.public.key_id
    rotated = world.last_entry()
    assert (rotated.action, rotated.outcome) == ("key.rotate", "granted")
    assert rotated.details["old_key_id"] == alice.keys.public.key_id
    client.channels.list()
    assert world.last_entry().actor == Actor(liaison="alice", key=new.public.key_id)
    assert [k.retired_at is None for k in client.liaisons.keys("alice")] == [True, False]


def test_sdk_rotation_without_credentials_fails_locally(world: World) -> None:
    with Client(BASE_URL, http=world.client) as client, pytest.raises(NotLoggedIn):
        client.liaisons.rotate(LiaisonKeys.generate())


# -- cadena keys rotate --------------------------------------------------------------


def _server_keys(world: World, person_id: str) -> list[tuple[str, bool]]:
    keys = world.client.get(f"/v1/liaisons/{person_id}/keys", headers=world.coordinator.auth)
    return [(k["key_id"], k["retired_at"] is None) for k in keys.json()]


def test_cli_rotation_replaces_the_profile_keys_and_keeps_the_old_file(
        cli: Cli, world: World) -> None:
    alice = world.liaison("alice", "CO")
    cli.profile_for("alice", alice)
    old = alice.keys.public.key_id
    shown = cli.json("keys", "rotate", "--profile", "alice", "--no-passphrase")
    profile = Profile("alice", cli.home)
    assert shown["key_id"] == profile.public_keys().key_id != old
    assert _server_keys(world, "alice") == [(shown["key_id"], True), (old, False)]
    assert profile.retired_key_path(old).exists()
    assert not profile.staged_key_path.exists()
    assert LiaisonPublicKeys.from_json(json.loads(profile.retired_key_path(old).read_text())[
        "public"]).key_id == old
    assert cli.json("channels", "list", "--profile", "alice") == []  # logs in with the new key
    assert world.last_entry().actor == Actor(liaison="alice", key=shown["key_id"])


def test_cli_rotation_refused_by_the_server_keeps_the_profile_as_it_was(
        cli: Cli, world: World) -> None:
    alice = world.liaison("alice", "CO")
    cli.profile_for("alice", alice)
    world.client.post(f"/v1/liaisons/alice/keys/{alice.keys.public.key_id}/revoke",
                      headers=world.coordinator.auth, json={"reason": "laptop lost"})
    cli.run("keys", "rotate", "--profile", "alice", "--no-passphrase", code=EXIT_REFUSED)
    profile = Profile("alice", cli.home)
    assert profile.public_keys() == alice.keys.public
    assert not profile.staged_key_path.exists()


def test_cli_finishes_a_rotation_the_server_accepted_before_an_interruption(
        cli: Cli, world: World) -> None:
    alice, new = world.liaison("alice", "CO"), LiaisonKeys.generate()
    cli.profile_for("alice", alice)
    profile = Profile("alice", cli.home)
    profile.stage_key_file(save_keys(new, None, allow_plaintext=True))
    sdk_for(world, alice).liaisons.rotate(new)  # accepted; the client "crashed" here
    result = cli.run("keys", "rotate", "--profile", "alice", "--no-passphrase")
    assert "interrupted rotation had been accepted" in " ".join(result.stderr.split())
    assert profile.public_keys() == new.public
    assert profile.retired_key_path(alice.keys.public.key_id).exists()
    assert _server_keys(world, "alice")[0] == (new.public.key_id, True)


def test_cli_drops_a_staged_key_the_server_never_accepted(cli: Cli, world: World) -> None:
    alice, never_sent = world.liaison("alice", "CO"), LiaisonKeys.generate()
    cli.profile_for("alice", alice)
    profile = Profile("alice", cli.home)
    profile.stage_key_file(save_keys(never_sent, None, allow_plaintext=True))
    shown = cli.json("keys", "rotate", "--profile", "alice", "--no-passphrase")
    assert shown["key_id"] not in (never_sent.public.key_id, alice.keys.public.key_id)
    assert _server_keys(world, "alice")[0] == (shown["key_id"], True)
