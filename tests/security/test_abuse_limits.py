"""Abuse limits: rate limits on logging in and submitting, challenge expiry, revocation.

Every refusal is a problem document and a denied ledger entry: a flood of
logins or submissions is slowed down (429 ``rate-limited``) and shows up in
the ledger; an expired challenge buys no token; revoking a key ends the
tokens issued under it at once.
"""

from __future__ import annotations

import base64

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import update

from app.ledger.summaries import SUMMARY_ACTION, write_entries
from app.models.auth import AuthChallenge
from app.ratelimit import MAX_KEYS, RateLimiter, RateLimits
from crypto import AUTH_CHALLENGE_TYPE, sign
from tests.app.conftest import World, b64
from tests.app.test_packets_support import (
    assert_denied,
    assert_problem,
    exchange,
    execute,
    past,
    seal,
    submit,
)


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _limit(world: World, login: int = 1000, submit_: int = 1000) -> None:
    """Replace the process's limiters (the app makes them on first use)."""
    world.client.app.state.rate_limits = RateLimits(login, submit_)  # type: ignore[attr-defined]


def test_token_bucket_allows_a_burst_then_refills_per_minute() -> None:
    clock = FakeClock()
    limiter = RateLimiter(6, clock=clock)
    assert [limiter.wait_for("k") for _ in range(6)] == [0.0] * 6
    assert limiter.wait_for("k") == 10.0  # 6 per minute: one token every 10 s
    assert limiter.wait_for("other") == 0.0
    clock.now += 10
    assert limiter.wait_for("k") == 0.0
    assert limiter.wait_for("k") > 0


def test_rate_limiter_memory_is_bounded() -> None:
    limiter = RateLimiter(1, clock=FakeClock())
    for i in range(MAX_KEYS + 50):
        limiter.wait_for(f"addr:{i}")
    assert len(limiter._buckets) == MAX_KEYS


def assert_summarised(world: World, response: httpx.Response, *, status: int, code: str,
                      subject: dict[str, str], action: str, count: int = 1) -> None:
    """A 429 counted into the ledger's refusal summary, which accounts for it once written."""
    assert_problem(response, status, code)
    reference = response.json()["ledger_summary"]
    assert "ledger_index" not in response.json()
    app = world.client.app
    write_entries(app.state.sessions,  # type: ignore[attr-defined]
                  app.state.refusal_summaries.due(everything=True))  # type: ignore[attr-defined]
    summaries = [e for e in world.entries() if e.action == SUMMARY_ACTION
                 and e.details["summary"] == reference["id"]]
    assert len(summaries) == 1, summaries
    entry = summaries[0]
    assert (entry.outcome, entry.reason, dict(entry.subject)) == ("denied", code, subject)
    assert entry.details["count"] == count
    assert entry.details["actions"] == [{"action": action, "count": count}]
    assert entry.details["until"] == reference["until"]


def test_login_flood_is_429_and_counted_in_the_ledger(world: World) -> None:
    world.liaison("alice", "CO", login=False)
    _limit(world, login=3)
    for _ in range(3):
        response = world.client.post("/v1/auth/challenge", json={"liaison_id": "alice"})
        assert response.status_code == 201, response.text
    response = world.client.post("/v1/auth/challenge", json={"liaison_id": "alice"})
    assert_summarised(world, response, status=429, code="rate-limited",
                      subject={"type": "address", "id": "testclient"}, action="auth.challenge")
    assert response.json()["retry_after"] >= 1


def test_a_challenge_flood_from_one_address_does_not_lock_the_liaison_out_elsewhere(
        world: World) -> None:
    world.liaison("alice", "CO", login=False)
    _limit(world, login=3)
    for _ in range(4):
        world.client.post("/v1/auth/challenge", json={"liaison_id": "alice"})
    assert world.client.post("/v1/auth/challenge",
                             json={"liaison_id": "alice"}).status_code == 429
    elsewhere = TestClient(world.client.app, client=("203.0.113.9", 50000))
    response = elsewhere.post("/v1/auth/challenge", json={"liaison_id": "alice"})
    assert response.status_code == 201, response.text


def test_token_requests_are_rate_limited_per_address(world: World) -> None:
    alice = world.liaison("alice", "CO", login=False)
    _limit(world, login=2)
    for _ in range(2):
        world.client.post("/v1/auth/token", json={
            "challenge_id": "0" * 32, "key_id": alice.keys.public.key_id,
            "signature": "A" * 86 + "=="})
    response = world.client.post("/v1/auth/token", json={
        "challenge_id": "0" * 32, "key_id": alice.keys.public.key_id,
        "signature": "A" * 86 + "=="})
    assert_summarised(world, response, status=429, code="rate-limited",
                      subject={"type": "address", "id": "testclient"}, action="auth.login")


def test_submission_flood_is_429_per_liaison_and_counted_in_the_ledger(world: World) -> None:
    ex = exchange(world)
    _limit(world, submit_=2)
    for _ in range(2):
        assert submit(world, ex.alice, ex.seal()).status_code == 201
    response = submit(world, ex.alice, ex.seal())
    assert_summarised(world, response, status=429, code="rate-limited",
                      subject={"type": "liaison", "id": ex.alice.id}, action="packet.submit")
    # Another liaison has a bucket of their own.
    response = submit(world, ex.bob, seal(ex.bob, [ex.alice], ex.channel))
    assert response.status_code == 201, response.text


def test_expired_challenge_buys_no_token_and_is_logged(world: World) -> None:
    alice = world.liaison("alice", "CO", login=False)
    challenge = world.client.post("/v1/auth/challenge", json={"liaison_id": "alice"}).json()
    execute(world, update(AuthChallenge).where(AuthChallenge.id == challenge["challenge_id"])
            .values(expires_at=past(5)))
    signature = sign(alice.keys.signing_key, AUTH_CHALLENGE_TYPE,
                     base64.b64decode(challenge["payload"]))
    response = world.client.post("/v1/auth/token", json={
        "challenge_id": challenge["challenge_id"], "key_id": alice.keys.public.key_id,
        "signature": b64(signature)})
    # every failed login answers alike ("login-refused"); the ledger has the reason
    body = assert_problem(response, 401, "unauthenticated")
    assert body["reason"] == "login-refused"
    entry = world.last_entry()
    assert (entry.action, entry.outcome, entry.reason) == ("auth.login", "denied",
                                                           "challenge-expired")
    assert body["ledger_index"] == entry.index


def test_key_revocation_ends_its_tokens_at_once(world: World) -> None:
    alice = world.liaison("alice", "CO")
    assert world.client.get("/v1/packets", headers=alice.auth).status_code == 200
    response = world.client.post(
        f"/v1/liaisons/alice/keys/{alice.keys.public.key_id}/revoke",
        headers=world.coordinator.auth, json={"reason": "laptop stolen"})
    assert response.status_code == 200, response.text
    response = world.client.get("/v1/packets", headers=alice.auth)
    assert_denied(world, response, 401, "unauthenticated", "packet.list", "token-revoked")
    challenge = world.client.post("/v1/auth/challenge", json={"liaison_id": "alice"}).json()
    signature = sign(alice.keys.signing_key, AUTH_CHALLENGE_TYPE,
                     base64.b64decode(challenge["payload"]))
    response = world.client.post("/v1/auth/token", json={
        "challenge_id": challenge["challenge_id"], "key_id": alice.keys.public.key_id,
        "signature": b64(signature)})
    assert_problem(response, 401, "unauthenticated")
