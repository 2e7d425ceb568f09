"""A retrieval checks its bearer token in the query that reads the packet, and a submission
in the query that reads its key set (issue 21).

One statement reads the token, its holder and the packet for the token's
liaison (docs/adr/0027); every check of the token is still made, first, on
what it read, so a token that is forged, revoked or expired is refused and
logged exactly as on any other route, whether or not the packet exists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, update

from app.models.auth import AuthToken
from app.models.identity import LiaisonKey
from crypto import uuid7
from tests.app.conftest import Person, World
from tests.app.test_packets_support import (
    assert_denied,
    assert_granted,
    envelope_b64,
    exchange,
    execute,
    past,
    upload,
)


@contextmanager
def _statements(world: World) -> Iterator[list[str]]:
    """Every SQL statement the service runs meanwhile."""
    engine = world.client.app.state.engine  # type: ignore[attr-defined]
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)


def test_a_retrieval_reads_its_token_and_its_packet_in_one_statement(world: World) -> None:
    ex = exchange(world)
    _, packet = ex.sent()
    with _statements(world) as seen:
        response = world.client.get(f"/v1/packets/{packet}", headers=ex.bob.auth)
    assert response.status_code == 200, response.text
    assert_granted(world, response.json(), "packet.retrieve")
    token_reads = [s for s in seen if "FROM auth_tokens" in s]
    assert len(token_reads) == 1
    assert "packet_streams" in token_reads[0]
    assert response.json()["wrapped_key"] is not None


def _revoked(world: World, person: Person) -> None:
    execute(world, update(AuthToken).where(AuthToken.liaison_id == person.id)
            .values(revoked_at=past()))


def _expired(world: World, person: Person) -> None:
    execute(world, update(AuthToken).where(AuthToken.liaison_id == person.id)
            .values(expires_at=past()))


def _forged(_world: World, person: Person) -> None:
    assert person.token is not None
    prefix, token_id, secret = person.token.split(".")
    person.token = f"{prefix}.{token_id}.{secret[::-1]}"


@pytest.mark.parametrize(("spoil", "reason"), [
    (_revoked, "token-revoked"), (_expired, "token-expired"), (_forged, "forged-token")])
@pytest.mark.parametrize("known_packet", [True, False])
def test_a_spoilt_token_is_refused_before_the_packet_is_looked_at_and_logged(
        world: World, spoil: Callable[[World, Person], None], reason: str,
        known_packet: bool) -> None:
    ex = exchange(world)
    _, packet = ex.sent()
    spoil(world, ex.bob)
    wanted = packet if known_packet else uuid7()
    response = world.client.get(f"/v1/packets/{wanted}", headers=ex.bob.auth)
    assert_denied(world, response, 401, "unauthenticated", "packet.retrieve", reason)


def test_an_unknown_packet_for_a_good_token_is_the_usual_logged_404(world: World) -> None:
    ex = exchange(world)
    ex.sent()
    response = world.client.get(f"/v1/packets/{uuid7()}", headers=ex.bob.auth)
    assert_denied(world, response, 404, "not-found", "packet.retrieve", "no-such-packet")


# -- a submission reads its token and its key set in one statement ------------------------


def test_a_submission_reads_its_token_and_its_key_in_one_statement(world: World) -> None:
    ex = exchange(world)
    sealed = ex.seal()
    for stream in sealed.streams:
        assert upload(world, ex.alice, stream).status_code in (200, 201)
    with _statements(world) as seen:
        response = world.client.post("/v1/packets", headers=ex.alice.auth,
                                     json={"envelope": envelope_b64(sealed)})
    assert response.status_code == 201, response.text
    token_reads = [s for s in seen if "FROM auth_tokens" in s]
    assert len(token_reads) == 1
    assert "signing_public" in token_reads[0]
    key_reads = [s for s in seen if "signing_public" in s and "auth_tokens" not in s]
    assert key_reads == []


@pytest.mark.parametrize("spoil", ["retired", "another liaison's"])
def test_a_submission_signed_with_a_key_not_current_is_refused_and_logged(
        world: World, spoil: str) -> None:
    """The key set read with the token must be usable and the caller's own: a token whose
    key set was rotated out since it was issued may not submit."""
    ex = exchange(world)
    sealed = ex.seal()
    for stream in sealed.streams:
        assert upload(world, ex.alice, stream).status_code in (200, 201)
    if spoil == "retired":
        execute(world, update(LiaisonKey).where(LiaisonKey.liaison_id == ex.alice.id)
                .values(retired_at=past()))
    else:  # the token's key set now belongs to someone else (a corrupted row)
        execute(world, update(LiaisonKey).where(LiaisonKey.liaison_id == ex.alice.id)
                .values(liaison_id=ex.carol.id))
    response = world.client.post("/v1/packets", headers=ex.alice.auth,
                                 json={"envelope": envelope_b64(sealed)})
    if spoil == "retired":
        assert_denied(world, response, 403, "not-the-sender", "packet.submit",
                      "key-not-current")
    else:  # the token's holder is now carol, whose role and state the token reads
        assert response.status_code in (401, 403), response.text
