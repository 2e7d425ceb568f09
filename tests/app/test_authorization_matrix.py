"""Who may call what: every caller condition against every packet and ledger route.

Each row is a caller in one condition (DESIGN.md invariant 3: membership,
clearance level and validity, state, key — checked at the instant of the
request); each column a route. Every cell asserts the status, the problem
type, and the one ledger entry the request appended (its action and outcome).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import delete, update

from app.models.auth import AuthToken
from app.models.channel import ChannelMember
from app.models.identity import Clearance
from tests.app.conftest import Person, World, sign_checkpoint_now
from tests.app.test_packets_support import (
    PROBLEM,
    envelope_b64,
    execute,
    last_entry,
    ledger_size,
    make_channel,
    past,
    seal,
    sha256,
    submit,
    upload,
)

ROUTES = ["upload", "submit", "list", "retrieve", "download", "thread", "share_request",
          "ledger_entries", "ledger_inclusion", "ledger_consistency", "ledger_checkpoints"]
ACTIONS = {"upload": "blob.upload", "submit": "packet.submit", "list": "packet.list",
           "retrieve": "packet.retrieve", "download": "packet.download",
           "thread": "packet.thread", "share_request": "packet.share_request",
           "ledger_entries": "ledger.entries", "ledger_inclusion": "ledger.inclusion",
           "ledger_consistency": "ledger.consistency",
           "ledger_checkpoints": "ledger.checkpoints"}
OK = (200, None)
CREATED = (201, None)
UNAUTH = (401, "unauthenticated")
ROLE = (403, "forbidden")
PACKET_ROUTES = ("retrieve", "download", "thread", "share_request")
LEDGER_ROUTES = ("ledger_entries", "ledger_inclusion", "ledger_consistency",
                 "ledger_checkpoints")


def _row(default: tuple[int, str | None], **cells: tuple[int, str | None]
         ) -> dict[str, tuple[int, str | None]]:
    return {route: cells.get(route, default) for route in ROUTES}


def _packet_refusal(refusal: tuple[int, str | None], **cells: tuple[int, str | None]
                    ) -> dict[str, tuple[int, str | None]]:
    base = {"upload": CREATED, "submit": CREATED, "list": OK, **dict.fromkeys(LEDGER_ROUTES, ROLE),
            **dict.fromkeys(PACKET_ROUTES, refusal)}
    return {**base, **cells}


EXPECTED: dict[str, dict[str, tuple[int, str | None]]] = {
    "anonymous": _row(UNAUTH),
    "forged token": _row(UNAUTH),
    "expired token": _row(UNAUTH),
    "revoked key": _row(UNAUTH),
    "suspended state": _row(UNAUTH),
    "non-member": _packet_refusal((403, "not-a-member"), submit=(403, "not-a-member")),
    "insufficient clearance": _packet_refusal((403, "insufficient-clearance"),
                                              submit=(403, "insufficient-clearance")),
    # DESIGN invariant 3 on every authenticated route, not only the packet rules
    "expired clearance": _row((403, "no-clearance")),
    "not a recipient": _packet_refusal((404, "not-found")),
    "withdrawn packet": _packet_refusal((410, "packet-withdrawn"), thread=OK),
    "correct prosecutor": _packet_refusal(OK, share_request=CREATED),
    "auditor": _row(ROLE, **dict.fromkeys(LEDGER_ROUTES, OK)),
}


@dataclass
class Case:
    """One row's caller, the packet they try to reach, and what they would submit."""

    caller: Person
    headers: dict[str, str]
    packet: str
    envelope: str


def _coordinator(world: World, method: str, url: str, body: dict[str, str]) -> None:
    response = world.client.request(method, url, headers=world.coordinator.auth, json=body)
    assert response.status_code == 200, response.text


CONDITIONS: dict[str, Callable[[World, Person, str], None]] = {
    "expired token": lambda w, p, _: execute(w, update(AuthToken).where(
        AuthToken.liaison_id == p.id).values(expires_at=past())),
    "revoked key": lambda w, p, _: _coordinator(
        w, "POST", f"/v1/liaisons/{p.id}/keys/{p.keys.public.key_id}/revoke", {"reason": "lost"}),
    "suspended state": lambda w, p, _: _coordinator(
        w, "PATCH", "/v1/states/SU", {"status": "suspended", "reason": "review"}),
    "non-member": lambda w, p, _: execute(w, delete(ChannelMember).where(
        ChannelMember.liaison_id == p.id)),
    "insufficient clearance": lambda w, p, _: execute(w, update(Clearance).where(
        Clearance.liaison_id == p.id).values(level=1)),
    "expired clearance": lambda w, p, _: execute(w, update(Clearance).where(
        Clearance.liaison_id == p.id).values(valid_until=past())),
    "withdrawn packet": lambda w, p, pid: _withdraw(w, pid),
}


def _withdraw(world: World, pid: str) -> None:
    alice = world.people["alice"]
    response = world.client.post(f"/v1/packets/{pid}/withdraw", headers=alice.auth,
                                 json={"reason": "matrix"})
    assert response.status_code == 200, response.text


def _prepare(world: World, index: int, row: str) -> Case:
    role = "auditor" if row == "auditor" else "prosecutor"
    state = "SU" if row == "suspended state" else "MX"
    caller = world.liaison(f"caller{index}", state, role=role)
    other = world.liaison(f"other{index}", "MX")
    channel = f"m{index}"
    members = [world.people["alice"], other, world.people["witness"]]
    make_channel(world, channel, members + ([caller] if role == "prosecutor" else []))
    addressee = other if row == "not a recipient" else caller
    if role == "auditor":
        addressee = other
    sealed = seal(world.people["alice"], [addressee], channel)
    response = submit(world, world.people["alice"], sealed)
    assert response.status_code == 201, response.text
    own = seal(caller, [world.people["alice"]], channel)
    if role == "prosecutor":
        for stream in own.streams:
            assert upload(world, caller, stream).status_code == 201
    condition = CONDITIONS.get(row)
    if condition is not None:
        condition(world, caller, response.json()["id"])
    headers = {} if row == "anonymous" else dict(caller.auth)
    if row == "forged token":
        headers = {"Authorization": headers["Authorization"][:-4] + "AAAA"}
    return Case(caller, headers, response.json()["id"], envelope_b64(own))


def _call(world: World, case: Case, route: str, size: int) -> httpx.Response:
    client, h, pid = world.client, case.headers, case.packet
    data = os.urandom(64)
    calls: dict[str, Callable[[], httpx.Response]] = {
        "upload": lambda: client.put(f"/v1/blobs/{sha256(data)}", content=data, headers=h),
        "submit": lambda: client.post("/v1/packets", headers=h,
                                      json={"envelope": case.envelope}),
        "list": lambda: client.get("/v1/packets", headers=h),
        "retrieve": lambda: client.get(f"/v1/packets/{pid}", headers=h),
        "download": lambda: client.get(f"/v1/packets/{pid}/streams/1", headers=h),
        "thread": lambda: client.get(f"/v1/packets/{pid}/thread", headers=h),
        "share_request": lambda: client.post(f"/v1/packets/{pid}/share-requests", headers=h,
                                             json={"recipient_id": "witness"}),
        "ledger_entries": lambda: client.get("/v1/ledger/entries?limit=5", headers=h),
        "ledger_inclusion": lambda: client.get(
            f"/v1/ledger/proofs/inclusion?index=0&size={size}", headers=h),
        "ledger_consistency": lambda: client.get(
            f"/v1/ledger/proofs/consistency?from={size}&to={size}", headers=h),
        "ledger_checkpoints": lambda: client.get("/v1/ledger/checkpoints?limit=5", headers=h),
    }
    response: httpx.Response = calls[route]()
    return response


def test_every_caller_condition_against_every_route(world: World,
                                                    subtests: pytest.Subtests) -> None:
    world.state("MX")
    world.state("SU")
    world.liaison("alice", "CO")
    world.liaison("witness", "MX")
    cases = {row: _prepare(world, i, row) for i, row in enumerate(EXPECTED)}
    sign_checkpoint_now(world)
    size = ledger_size(world)
    for row, expected in EXPECTED.items():
        for route, (status, code) in expected.items():
            with subtests.test(msg=f"{row} -> {route}"):
                response = _call(world, cases[row], route, size)
                assert response.status_code == status, response.text
                entry = last_entry(world)
                assert entry.action == ACTIONS[route]
                if code is None:
                    assert entry.outcome == "granted"
                    continue
                assert entry.outcome == "denied"
                assert response.json()["type"] == PROBLEM + code
                assert response.json()["ledger_index"] == entry.index
