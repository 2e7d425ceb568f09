"""Refusals tell a prosecutor, and a court reading a certificate, the rule, not others' facts.

A third party (dave) whom a prosecutor names as a recipient may be of a
suspended or withdrawn state, outside the channel, or cleared below the
packet: the problem bodies the prosecutors receive and every entry of the
certificate they obtain say ``recipient-not-eligible``, never dave's level,
his state's status or his state. The auditor's record says why.
"""

from __future__ import annotations

import itertools
import json
import re
import string
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crypto import share_content_key
from custody import parse_bundle
from tests.app.conftest import Person, World, sign_checkpoint_now
from tests.app.test_packets_support import (
    Exchange,
    exchange,
    last_entry,
    opened_by,
    refusal_detail,
    signed_body,
    submit,
)
from tests.certificates.helpers import COURT, PURPOSE

LEVELS = ("RESTRICTED", "CONFIDENTIAL", "SECRET")
STATUSES = ("active", "suspended", "withdrawn")
# Words that would tell a third party's standing; checked without regard to case.
TELLING = re.compile("|".join((*LEVELS, *STATUSES, "member", "clearance")), re.IGNORECASE)
_CODES: Iterator[str] = ("".join(p) for p in itertools.product("QRSTUVWXYZ",
                                                               string.ascii_uppercase))


@dataclass(frozen=True)
class Standing:
    """A third party's facts, which refusals must not reveal."""

    level: str | None
    status: str
    member: bool

    @property
    def eligible(self) -> bool:
        """Whether dave may receive a SECRET packet of the channel."""
        return self.level == "SECRET" and self.status == "active" and self.member


standings = st.builds(Standing, st.sampled_from([None, *LEVELS]), st.sampled_from(STATUSES),
                      st.booleans())


def _third_party(world: World, ex: Exchange, standing: Standing) -> tuple[Person, str]:
    """dave, enrolled in a fresh state with ``standing``; his id and state code."""
    code = next(_CODES)
    world.state(code)
    dave = world.liaison(f"dave{code.lower()}", code, level=standing.level, login=False)
    if standing.member:
        world.client.post(f"/v1/channels/{ex.channel}/members", headers=world.coordinator.auth,
                          json={"liaison_id": dave.id}).raise_for_status()
    if standing.status != "active":
        world.client.patch(f"/v1/states/{code}", headers=world.coordinator.auth, json={
            "status": standing.status, "reason": "review"}).raise_for_status()
    return dave, code


def _tells_nothing(text: str, state_code: str) -> None:
    assert not TELLING.search(text), text
    assert not re.search(rf"\b{state_code}\b", text), text


def _refused_for_dave(world: World, response: httpx.Response, state_code: str) -> None:
    """A refusal naming dave: the code, nothing of his facts; the auditor's record says why."""
    assert response.status_code == 403, response.text
    body = response.json()
    assert body["reason"] == "recipient-not-eligible"
    _tells_nothing(response.text, state_code)
    entry = last_entry(world)
    assert entry.reason == "recipient-not-eligible"
    _tells_nothing(entry.raw.decode(), state_code)
    assert refusal_detail(world, entry.index).startswith("recipient dave")


def _certificate_entries(world: World, bob: Person, packet_id: str) -> list[dict[str, object]]:
    response = world.client.post(f"/v1/packets/{packet_id}/certificates", headers=bob.auth,
                                 json={"issued_to": COURT, "purpose": PURPOSE})
    assert response.status_code == 202, response.text
    sign_checkpoint_now(world)
    collected = world.client.get(f"/v1/certificates/{response.json()['id']}", headers=bob.auth)
    assert collected.status_code == 200, collected.text
    events = parse_bundle(collected.content).certificate.events
    return [json.loads(event.entry) for event in events]


@settings(max_examples=12, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(standing=standings)
def test_refusals_about_a_third_party_reveal_only_the_code(world: World,
                                                           standing: Standing) -> None:
    ex = exchange(world) if "alice" not in world.people else _again(world)
    dave, code = _third_party(world, ex, standing)
    to_both = submit(world, ex.alice, ex.seal([ex.bob, dave], classification="SECRET"),
                     upload_streams=standing.eligible)
    if standing.eligible:
        assert to_both.status_code == 201, to_both.text
        return
    _refused_for_dave(world, to_both, code)
    sealed, packet_id = ex.sent(classification="SECRET")
    asked = world.client.post(f"/v1/packets/{packet_id}/share-requests", headers=ex.bob.auth,
                              json={"recipient_id": dave.id})
    _refused_for_dave(world, asked, code)
    share = share_content_key(opened_by(sealed, ex.alice, ex.bob), ex.bob.keys, "bob", dave.id,
                              dave.keys.public)
    shared = world.client.post(f"/v1/packets/{packet_id}/shares", headers=ex.bob.auth,
                               json=signed_body(share.share, share.signature))
    _refused_for_dave(world, shared, code)
    entries = _certificate_entries(world, ex.bob, packet_id)
    refusals = [e for e in entries if e["outcome"] == "denied"]
    assert [e["action"] for e in refusals] == ["packet.share_request", "packet.share"]
    for entry in entries:
        details = dict(entry.get("details", {}))  # type: ignore[call-overload]
        details.pop("classification", None)  # the packet's own, in its submission entry
        text = json.dumps({**entry, "details": details})
        assert not TELLING.search(text), text
    for entry in refusals:
        _tells_nothing(json.dumps(entry), code)


def _again(world: World) -> Exchange:
    people = world.people
    return Exchange(world, people["alice"], people["bob"], people["carol"])
