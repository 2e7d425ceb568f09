"""Authentication: challenge–response logins and bearer tokens, every refusal logged."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

from httpx import Response
from sqlalchemy import update

from app.ledger.engine import make_engine
from app.models.auth import AuthChallenge, AuthToken
from crypto import AUTH_CHALLENGE_TYPE, LiaisonKeys, sign
from crypto.signing import RECEIPT_TYPE
from tests.app.conftest import World, b64
from tests.app.rotation_support import rotate


def _challenge(world: World, liaison_id: str) -> dict[str, str]:
    response = world.client.post("/v1/auth/challenge", json={"liaison_id": liaison_id})
    assert response.status_code == 201, response.text
    return dict(response.json())


def _token(world: World, challenge: dict[str, str], keys: LiaisonKeys,
           kind: str = AUTH_CHALLENGE_TYPE) -> Response:
    signature = sign(keys.signing_key, kind, base64.b64decode(challenge["payload"]))
    response: Response = world.client.post("/v1/auth/token", json={
        "challenge_id": challenge["challenge_id"], "key_id": keys.public.key_id,
        "signature": b64(signature)})
    return response


def _exec(world: World, statement: object) -> None:
    engine = make_engine(world.settings.resolved_database_url())
    try:
        with engine.begin() as conn:
            conn.execute(statement)  # type: ignore[call-overload]
    finally:
        engine.dispose()


def test_login_issues_token_and_logs_it(world: World) -> None:
    alice = world.liaison("alice", "CO")
    body = world.login(alice)
    entry = world.last_entry()
    assert (entry.action, entry.outcome) == ("auth.login", "granted")
    assert entry.actor is not None
    assert entry.actor.liaison == "alice"
    assert body["ledger"]["index"] == entry.index
    assert body["ledger"]["leaf_hash"] == entry.leaf_hash.hex()
    assert body["clearance_expires_at"] is not None
    assert world.client.get("/v1/channels", headers=alice.auth).status_code == 200


def test_replayed_challenge_is_refused_and_logged(world: World) -> None:
    alice = world.liaison("alice", "CO", login=False)
    challenge = _challenge(world, "alice")
    assert _token(world, challenge, alice.keys).status_code == 201
    replay = _token(world, challenge, alice.keys)
    assert replay.status_code == 401
    assert replay.headers["content-type"] == "application/problem+json"
    assert replay.json()["type"].endswith("/unauthenticated")
    entry = world.last_entry()
    assert (entry.action, entry.outcome, entry.reason) == (
        "auth.login", "denied", "challenge-used")
    assert replay.json()["ledger_index"] == entry.index


def test_expired_challenge_is_refused(world: World) -> None:
    alice = world.liaison("alice", "CO", login=False)
    challenge = _challenge(world, "alice")
    _exec(world, update(AuthChallenge).values(expires_at=datetime.now(UTC) - timedelta(1)))
    assert _token(world, challenge, alice.keys).status_code == 401
    assert world.last_entry().reason == "challenge-expired"


def test_signature_by_another_key_is_refused(world: World) -> None:
    world.liaison("alice", "CO", login=False)
    mallory = LiaisonKeys.generate()
    challenge = _challenge(world, "alice")
    assert _token(world, challenge, mallory).status_code == 401
    assert world.last_entry().reason == "wrong-key"


def test_signature_under_another_payload_type_is_refused(world: World) -> None:
    alice = world.liaison("alice", "CO", login=False)
    challenge = _challenge(world, "alice")
    assert _token(world, challenge, alice.keys, RECEIPT_TYPE).status_code == 401
    assert world.last_entry().reason == "bad-signature"


def test_unknown_liaison_gets_a_decoy_challenge_and_the_refusal_is_logged(
        world: World) -> None:
    world.liaison("alice", "CO", login=False)
    known = world.client.post("/v1/auth/challenge", json={"liaison_id": "alice"})
    size = len(world.entries())
    unknown = world.client.post("/v1/auth/challenge", json={"liaison_id": "nobody"})
    # the answers look the same: status, fields, sizes of every value
    assert (unknown.status_code, known.status_code) == (201, 201)
    assert sorted(unknown.json()) == sorted(known.json())
    assert {k: len(str(v)) for k, v in unknown.json().items() if k != "payload"} == \
        {k: len(str(v)) for k, v in known.json().items() if k != "payload"}
    assert len(world.entries()) == size + 1
    entry = world.last_entry()
    assert (entry.action, entry.outcome, entry.subject) == (
        "auth.challenge", "denied", {"type": "liaison", "id": "nobody"})


def test_a_decoy_challenge_buys_no_token_and_is_refused_like_a_bad_signature(
        world: World) -> None:
    alice = world.liaison("alice", "CO", login=False)
    decoy = _challenge(world, "nobody")
    forged = _challenge(world, "alice")
    mallory = LiaisonKeys.generate()
    refused = [_token(world, c, k) for c, k in ((decoy, alice.keys), (forged, mallory))]
    assert [r.status_code for r in refused] == [401, 401]
    bodies = [{k: v for k, v in r.json().items() if not k.startswith("ledger")} for r in refused]
    assert bodies[0] == bodies[1]
    assert bodies[0]["detail"] == "login refused"
    assert bodies[0]["reason"] == "login-refused"


def test_lapsed_clearance_cannot_log_in(world: World) -> None:
    alice = world.liaison("alice", "CO", level=None)
    world.grant("alice", "SECRET", days=1, start=datetime.now(UTC) - timedelta(days=2))
    challenge = _challenge(world, "alice")
    assert _token(world, challenge, alice.keys).status_code == 401
    assert world.last_entry().reason == "no-clearance"


def test_missing_forged_and_expired_tokens_are_refused_and_logged(world: World) -> None:
    alice = world.liaison("alice", "CO")
    assert alice.token is not None
    cases = {  # entry reason -> (headers, the reason the problem body shows)
        "no-token": ({}, "no-token"),
        "malformed-token": ({"Authorization": "Bearer nonsense"}, "invalid-token"),
        "forged-token": ({"Authorization": "Bearer " + alice.token[:-4] + "AAAA"},
                         "invalid-token"),
    }
    for reason, (headers, shown) in cases.items():
        response = world.client.get("/v1/channels", headers=headers)
        assert response.status_code == 401, reason
        assert response.json()["reason"] == shown  # a forged token is not told apart
        assert (world.last_entry().action, world.last_entry().reason) == ("channel.list", reason)
    _exec(world, update(AuthToken).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    assert world.client.get("/v1/channels", headers=alice.auth).status_code == 401
    assert world.last_entry().reason == "token-expired"


def test_revoked_key_ends_tokens_and_logins(world: World) -> None:
    alice = world.liaison("alice", "CO")
    revoke = world.client.post(f"/v1/liaisons/alice/keys/{alice.keys.public.key_id}/revoke",
                               headers=world.coordinator.auth, json={"reason": "laptop lost"})
    assert revoke.status_code == 200, revoke.text
    assert world.last_entry().action == "key.revoke"
    assert world.client.get("/v1/channels", headers=alice.auth).status_code == 401
    assert world.last_entry().reason == "token-revoked"
    assert _token(world, _challenge(world, "alice"), alice.keys).status_code == 401
    assert world.last_entry().reason == "key-revoked"


def test_suspended_state_refuses_its_liaisons(world: World) -> None:
    world.state("MX")
    alice = world.liaison("alice", "MX")
    suspend = world.client.patch("/v1/states/MX", headers=world.coordinator.auth,
                                 json={"status": "suspended", "reason": "review"})
    assert suspend.status_code == 200, suspend.text
    assert world.client.get("/v1/channels", headers=alice.auth).status_code == 401
    assert world.last_entry().reason == "state-not-active"


def test_key_rotation_keeps_old_key_and_needs_new_login(world: World) -> None:
    alice = world.liaison("alice", "CO")
    new = LiaisonKeys.generate()
    response = rotate(world, alice, new)
    assert response.status_code == 201, response.text
    assert world.last_entry().action == "key.rotate"
    assert world.client.get("/v1/channels", headers=alice.auth).status_code == 401
    alice.keys = new
    world.login(alice)
    keys = world.client.get("/v1/liaisons/alice/keys", headers=alice.auth).json()
    assert [k["retired_at"] is None for k in keys] == [True, False]
