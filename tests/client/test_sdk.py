"""The SDK against the real server: login, re-login, typed results, problems as exceptions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import update

from app.ledger.engine import make_engine
from app.models.auth import AuthToken
from client import (
    Client,
    Conflict,
    Credentials,
    Forbidden,
    InvalidRequest,
    NetworkError,
    NotFound,
    NotLoggedIn,
    ServerError,
    Unauthenticated,
)
from client.errors import EXIT_REFUSED, EXIT_SERVER, ProblemError
from client.models import Token
from crypto import LiaisonKeys
from tests.app.conftest import World
from tests.client.conftest import BASE_URL, sdk_for


def _expire_tokens(w: World) -> None:
    engine = make_engine(w.settings.resolved_database_url())
    try:
        with engine.begin() as conn:
            conn.execute(update(AuthToken).values(expires_at=datetime.now(UTC) - timedelta(1)))
    finally:
        engine.dispose()


def test_login_returns_token_with_token_and_clearance_expiry(world: World) -> None:
    with sdk_for(world, world.coordinator) as client:
        token = client.login()
    now = datetime.now(UTC)
    assert now < token.expires_at <= now + timedelta(minutes=11)
    assert token.clearance_expires_at is not None
    assert token.clearance_expires_at > now
    entry = world.last_entry()
    assert (entry.action, entry.outcome) == ("auth.login", "granted")
    assert token.ledger is not None
    assert token.ledger.index == entry.index
    assert "cdn1" not in repr(token)


def test_first_call_logs_in_by_itself(world: World) -> None:
    with sdk_for(world, world.coordinator) as client:
        assert client.token is None
        states = client.states.list()
        assert client.token is not None
    assert [s.code for s in states] == ["CO"]
    assert states[0].created_at.tzinfo is not None


def test_token_close_to_expiry_is_replaced_before_use(world: World) -> None:
    with sdk_for(world, world.coordinator) as first:
        old = first.login()
    nearly = Token(token=old.token, expires_at=datetime.now(UTC) + timedelta(seconds=5),
                   clearance_expires_at=None)
    logins: list[Token] = []
    client = Client(BASE_URL, http=world.client, token=nearly, on_login=logins.append,
                    credentials=Credentials("coord", world.coordinator.keys))
    client.states.list()
    assert len(logins) == 1
    assert client.token is not None
    assert client.token.token != old.token


def test_refused_token_triggers_one_new_login(world: World) -> None:
    with sdk_for(world, world.coordinator) as client:
        old = client.login()
        _expire_tokens(world)
        assert [s.code for s in client.states.list()] == ["CO"]
        assert client.token is not None
        assert client.token.token != old.token
    actions = [(e.action, e.outcome, e.reason) for e in world.entries()[-3:]]
    assert actions == [("state.list", "denied", "token-expired"),
                       ("auth.login", "granted", None), ("state.list", "granted", None)]


def test_new_login_is_tried_once_then_the_refusal_stands(world: World) -> None:
    stranger = Credentials("coord", LiaisonKeys.generate())
    stale = Token(token="cdn1.000000000000000000000000.AAAA",
                  expires_at=datetime.now(UTC) + timedelta(hours=1), clearance_expires_at=None)
    client = Client(BASE_URL, http=world.client, credentials=stranger, token=stale)
    with pytest.raises(Unauthenticated) as caught:
        client.states.list()
    assert caught.value.detail == "login refused"  # the reason is in the ledger only
    refusals = [e.reason for e in world.entries() if e.outcome == "denied"]
    assert refusals == ["malformed-token", "wrong-key"]
    assert caught.value.exit_code == EXIT_REFUSED


def test_refusal_carries_problem_members_and_ledger_index(world: World) -> None:
    alice = world.liaison("alice", "CO")
    with sdk_for(world, alice) as client, pytest.raises(Forbidden) as caught:
        client.states.enrol("MX", "México", "note MX")
    problem = caught.value
    assert (problem.status, problem.title, problem.code) == (403, "Access denied", "forbidden")
    assert problem.type == "https://cadena.example/problems/forbidden"
    assert "coordinator" in problem.detail
    assert problem.ledger_index == world.last_entry().index
    assert problem.extensions["instance"] == "/v1/states"


def test_each_status_maps_to_its_exception(world: World) -> None:
    with sdk_for(world, world.coordinator) as client:
        client.states.enrol("MX", "México", "note MX")
        with pytest.raises(Conflict) as conflict:
            client.states.enrol("MX", "México", "note MX")
        assert conflict.value.code == "state-exists"
        with pytest.raises(InvalidRequest) as invalid:
            client.states.enrol("mex", "México", "note")
        assert invalid.value.status == 422
        assert invalid.value.extensions["errors"]
        with pytest.raises(NotFound):
            client.liaisons.get("nobody")
        with pytest.raises(ServerError) as unavailable:
            client.ledger.checkpoint()
        assert unavailable.value.status == 503
        assert unavailable.value.exit_code == EXIT_SERVER
    assert all(issubclass(c, ProblemError) for c in (Conflict, InvalidRequest, ServerError))


def test_typed_results_for_coordination(world: World) -> None:
    world.state("MX")
    ana, ben = world.liaison("ana", "CO"), world.liaison("ben", "MX")
    with sdk_for(world, world.coordinator) as client:
        channel = client.channels.create("co-mx", "Colombia–Mexico", "bilateral", "SECRET",
                                         members=[ana.id])
        channel = client.channels.add_member("co-mx", ben.id)
        clearance = client.clearances.list("ana")[0]
        renewed = client.clearances.renew(clearance.id, clearance.valid_until + timedelta(1))
        liaison = client.liaisons.get("ana")
    assert channel.members == ["ana", "ben"]
    assert channel.kind == "bilateral"
    assert renewed.valid_until == clearance.valid_until + timedelta(1)
    assert liaison.current_key is not None
    assert liaison.current_key.fingerprint == ana.keys.public.fingerprint


def test_calls_needing_a_login_without_credentials_fail_locally(world: World) -> None:
    client = Client(BASE_URL, http=world.client)
    with pytest.raises(NotLoggedIn):
        client.states.list()
    assert client.ledger.verifier_key().startswith("test.cadena/ledger+")


def _refuse(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def test_unreachable_server_is_a_network_error() -> None:
    transport = httpx.MockTransport(_refuse)
    with Client("http://cadena.invalid", http=httpx.Client(transport=transport)) as client, \
            pytest.raises(NetworkError) as caught:
        client.ledger.verifier_key()
    assert caught.value.exit_code == EXIT_SERVER
