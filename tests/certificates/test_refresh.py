"""Certificates stay provable as the ledger grows, and pick up later witness cosignatures."""

from __future__ import annotations

import time

import pytest
from fastapi import FastAPI
from nacl.signing import SigningKey
from sqlalchemy.orm import sessionmaker

from app.ledger.unit_of_work import UnitOfWork, transaction
from app.witnesses import repository as witnesses
from app.witnesses.service import keep_cosignature
from client.certificate.refresh import certificate_size, refresh_bundle
from client.certificate.verify import CertificateInvalid, Trust, check_certificate
from custody import parse_bundle, parse_policy
from ledger import CosignatureSigner, parse_checkpoint_body, parse_note
from tests.app.conftest import World, sign_checkpoint_now
from tests.app.test_packets_support import assert_problem, last_entry
from tests.certificates.helpers import History, collect, history

WITNESS = CosignatureSigner("witness.example/w1", SigningKey(bytes(range(32))))


def _register_witness(world: World) -> None:
    response = world.client.post("/v1/witnesses", headers=world.coordinator.auth, json={
        "name": "w1", "url": "http://127.0.0.1:9", "verifier_key": WITNESS.verifier_key()})
    assert response.status_code == 201, response.text


def _cosign_latest(world: World) -> None:
    """What a witness round does: cosign the latest checkpoint and keep the line."""
    server = world.client.app
    assert isinstance(server, FastAPI)
    sessions: sessionmaker[UnitOfWork] = server.state.sessions
    note = world.client.get("/v1/ledger/checkpoint").text
    checkpoint = parse_checkpoint_body(parse_note(note).text_body)
    stamp = int(time.time())
    with transaction(sessions) as session:
        witness = witnesses.active_named(session, "w1")
        assert witness is not None
        keep_cosignature(session, witness.id, checkpoint.size,
                         WITNESS.cosign(checkpoint, stamp), timestamp=stamp)


def _refresh(h: History, data: bytes) -> bytes:
    bundle = parse_bundle(data)
    response = h.world.client.get(f"/v1/certificates/{bundle.certificate.id}/refresh",
                                  params={"from": certificate_size(bundle)},
                                  headers=h.ex.bob.auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert last_entry(h.world).action == "certificate.refresh"
    return refresh_bundle(bundle, body["checkpoint"],
                          [bytes.fromhex(x) for x in body["consistency"]]).to_bytes()


def _court_policy(world: World) -> str:
    ledger_key = world.client.get("/v1/ledger/key").text.strip()
    return f"log {ledger_key}\nwitness w1 {WITNESS.verifier_key()}\nquorum w1\n"


def test_refresh_extends_a_certificate_after_ledger_growth(world: World) -> None:
    h = history(world, share=False)
    data = h.certificate()
    for _ in range(3):
        assert world.client.get(f"/v1/packets/{h.packet_id}", headers=h.ex.bob.auth).is_success
    sign_checkpoint_now(world)
    refreshed = _refresh(h, data)
    report = check_certificate(refreshed, Trust(seal_key=h.seal_key()))
    assert report.ok, report.failures()
    detail = next(c.detail for c in report.checks if c.name == "refresh")
    assert f"tree size {certificate_size(parse_bundle(data))} is a prefix" in detail


def test_court_policy_quorum_is_met_only_after_a_cosigned_refresh(world: World) -> None:
    _register_witness(world)
    h = history(world, share=False)
    data = h.certificate()
    assert "witness w1" in parse_bundle(data).certificate.policy  # listed, quorum none
    trust = Trust(seal_key=h.seal_key(), policy=parse_policy(_court_policy(world)))
    report = check_certificate(data, trust)
    assert [c.name for c in report.failures()] == ["witness cosignatures"]
    assert "quorum 'w1' does not hold" in report.failures()[0].detail
    sign_checkpoint_now(world)
    _cosign_latest(world)
    report = check_certificate(_refresh(h, data), trust)
    assert report.ok, report.failures()
    assert "on the refreshed one (cosigned by w1)" in next(
        c.detail for c in report.checks if c.name == "witness cosignatures")


def test_configured_quorum_is_met_before_the_certificate_is_handed_out(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    _register_witness(world)
    monkeypatch.setattr(world.settings, "witness_quorum", 1)
    h = history(world, share=False)
    started = h.issue()
    assert started.status_code == 202, started.text
    url = f"/v1/certificates/{started.json()['id']}"
    sign_checkpoint_now(world)
    pending = world.client.get(url, headers=h.ex.bob.auth)  # the witness is unreachable
    assert (pending.status_code, pending.json()["cosignatures"]) == (202, 0)
    _cosign_latest(world)
    data = collect(h, started.json()["id"])
    assert parse_bundle(data).certificate.policy.endswith("quorum w1\n")
    assert check_certificate(data, Trust(seal_key=h.seal_key())).ok


def test_quorum_larger_than_the_witnesses_is_unavailable(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(world.settings, "witness_quorum", 2)
    h = history(world, share=False)
    assert_problem(h.issue(), 503, "certificates-unavailable")


def test_refresh_is_refused_to_strangers_and_from_unsigned_sizes(world: World) -> None:
    h = history(world, share=False)
    bundle = parse_bundle(h.certificate())
    url = f"/v1/certificates/{bundle.certificate.id}/refresh"
    stranger = world.client.get(url, params={"from": certificate_size(bundle)},
                                headers=h.ex.carol.auth)
    assert_problem(stranger, 404, "not-found")
    unsigned = world.client.get(url, params={"from": certificate_size(bundle) - 1},
                                headers=h.ex.bob.auth)
    assert_problem(unsigned, 422, "invalid-refresh")
    unknown = world.client.get("/v1/certificates/00000000-0000-7000-8000-000000000000/refresh",
                               params={"from": 5}, headers=h.ex.bob.auth)
    assert_problem(unknown, 404, "not-found")


def test_refresh_that_does_not_extend_the_checkpoint_is_not_attached(world: World) -> None:
    h = history(world, share=False)
    data = h.certificate()
    sign_checkpoint_now(world)
    bundle = parse_bundle(data)
    note = world.client.get("/v1/ledger/checkpoint").text
    with pytest.raises(CertificateInvalid, match="does not extend"):
        refresh_bundle(bundle, note, [bytes(32)])
