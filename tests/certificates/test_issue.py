"""Issuing certificates: who may, H1 permission, what the bundle holds, offline round trips."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from app.ledger.engine import make_engine
from app.models.certificate import LedgerSubject
from client.certificate.refresh import disclose_statement
from client.certificate.verify import (
    CertificateInvalid,
    Trust,
    check_certificate,
    verify_certificate,
)
from custody import parse_bundle
from tests.app.conftest import World, sign_checkpoint_now
from tests.app.test_packets_support import assert_denied, last_entry
from tests.certificates.helpers import COURT, EVIDENCE, PURPOSE, collect, history, sha256


def test_recipient_issues_a_certificate_that_verifies_offline(world: World) -> None:
    h = history(world)
    response = h.issue()
    assert response.status_code == 202, response.text
    entry = last_entry(world)
    assert (entry.action, entry.outcome) == ("certificate.issue", "granted")
    assert response.headers["Cadena-Ledger-Index"] == str(entry.index)
    assert response.json()["ledger_index"] == entry.index
    sign_checkpoint_now(world)
    bundle = verify_certificate(collect(h, response.json()["id"]),
                                Trust(seal_key=h.seal_key()))
    cert = bundle.certificate
    assert (cert.issued_to, cert.purpose, cert.issued_by) == (COURT, PURPOSE, "bob")
    actions = [json.loads(e.entry)["action"] for e in cert.events]
    assert actions == ["packet.submit", "packet.retrieve", "packet.download",
                       "packet.download", "packet.receipt", "packet.retrieve", "packet.share",
                       "packet.retrieve", "packet.receipts", "certificate.issue"]
    assert json.loads(cert.events[5].entry)["outcome"] == "denied"  # carol, before the share
    assert len(cert.receipts) == 1
    assert len(cert.shares) == 1
    assert {k.liaison for k in cert.keys} == {"alice", "bob"}


def test_custody_narrative_lists_the_hand_offs_in_order(world: World) -> None:
    cert = parse_bundle(history(world).certificate()).certificate
    rows = [(s.event.split(" (")[0], s.released_by, s.received_by) for s in cert.custody]
    assert rows == [
        ("submitted", "alice", "centre"), ("key delivered", "centre", "bob"),
        ("ciphertext stream 1 delivered", "centre", "bob"),
        ("ciphertext stream 2 delivered", "centre", "bob"), ("receipt signed", None, "bob"),
        ("key shared onward", "bob", "carol"), ("key delivered", "centre", "carol"),
        ("custody certificate issued", "centre", COURT)]
    assert {s.legal_basis for s in cert.custody} == {"Treaty on mutual legal assistance, art. 7"}


def test_disclosed_statement_lets_the_court_check_evidence_by_sha256(world: World) -> None:
    h = history(world)
    bundle = parse_bundle(h.certificate())
    statement, signature = h.statement()
    disclosed = disclose_statement(bundle, statement, signature, "bob").to_bytes()
    trust = Trust(seal_key=h.seal_key())
    verify_certificate(disclosed, trust, {"evidence.txt": sha256(EVIDENCE)})
    report = check_certificate(disclosed, trust, {"forged.txt": sha256(b"something else")})
    assert [c.name for c in report.failures()] == ["evidence forged.txt"]
    assert "matches no digest the sender signed" in report.failures()[0].detail


def test_evidence_without_a_disclosed_statement_fails_with_the_reason(world: World) -> None:
    h = history(world)
    with pytest.raises(CertificateInvalid, match="disclose the statement") as info:
        verify_certificate(h.certificate(), Trust(seal_key=h.seal_key()),
                           {"evidence.txt": sha256(EVIDENCE)})
    assert info.value.check == "evidence evidence.txt"


def test_statement_disclosed_by_a_non_receipting_liaison_is_refused(world: World) -> None:
    h = history(world)
    statement, signature = h.statement()
    with pytest.raises(CertificateInvalid, match="no signed receipt of carol"):
        disclose_statement(parse_bundle(h.certificate()), statement, signature, "carol")


def test_originator_and_coordinator_may_issue_a_bystander_may_not(world: World) -> None:
    h = history(world, share=False)
    h.ex.carol.token = None
    world.login(h.ex.carol)
    assert h.issue(h.ex.alice).status_code == 202
    assert h.issue(world.coordinator).status_code == 202
    refused = h.issue(h.ex.carol)
    assert_denied(world, refused, 404, "not-found", "certificate.issue",
                  "not-a-party")


def test_auditor_is_refused_and_logged(world: World) -> None:
    h = history(world, share=False)
    auditor = world.liaison("audrey", "CO", role="auditor")
    assert_denied(world, h.issue(auditor), 403, "forbidden", "certificate.issue", "role")


def test_h1_certificate_needs_the_originators_permission_for_that_court(world: World) -> None:
    h = history(world, handling="H1", share=False)
    assert_denied(world, h.issue(), 403, "judicial-permission-required", "certificate.issue",
                  "judicial-permission-required", detail=f"no judicial permission for {COURT}")
    url = f"/v1/packets/{h.packet_id}/judicial-permission"
    by_bob = world.client.post(url, headers=h.ex.bob.auth, json={"court": COURT})
    assert_denied(world, by_bob, 403, "originator-only", "packet.judicial_permission",
                  "originator-only")
    other = world.client.post(url, headers=h.ex.alice.auth, json={"court": "Another court"})
    assert other.status_code == 201
    assert h.issue().status_code == 403
    granted = world.client.post(url, headers=h.ex.alice.auth,
                                json={"court": COURT, "purpose": "trial"})
    assert granted.status_code == 201, granted.text
    assert granted.json()["ledger"]["index"] == last_entry(world).index
    again = world.client.post(url, headers=h.ex.alice.auth, json={"court": COURT})
    assert_denied(world, again, 409, "packet-conflict", "packet.judicial_permission",
                  "permission-already-given")
    data = h.certificate()
    bundle = verify_certificate(data, Trust(seal_key=h.seal_key()))
    steps = [s.event for s in bundle.certificate.custody]
    assert steps.count("judicial use permitted") == 2


def test_withdrawn_packet_still_gets_a_certificate(world: World) -> None:
    h = history(world, share=False)
    withdrawn = world.client.post(f"/v1/packets/{h.packet_id}/withdraw",
                                  headers=h.ex.alice.auth, json={"reason": "source burned"})
    assert withdrawn.status_code == 200, withdrawn.text
    assert world.client.get(f"/v1/packets/{h.packet_id}",
                            headers=h.ex.bob.auth).status_code == 410
    bundle = verify_certificate(h.certificate(), Trust(seal_key=h.seal_key()))
    assert "withdrawn by the originator" in [s.event for s in bundle.certificate.custody]


def test_second_certificate_covers_the_first_issue(world: World) -> None:
    h = history(world, share=False)
    first = parse_bundle(h.certificate()).certificate
    second = verify_certificate(h.certificate(h.ex.alice), Trust(seal_key=h.seal_key()))
    actions = [json.loads(e.entry)["action"] for e in second.certificate.events]
    assert actions.count("certificate.issue") == 2
    assert second.certificate.id != first.id


def test_bad_input_is_refused_and_changes_nothing(world: World) -> None:
    h = history(world, share=False)
    before = last_entry(world).index
    for body in ({"issued_to": "", "purpose": "x"}, {"issued_to": " padded", "purpose": "x"},
                 {"issued_to": "a\nb", "purpose": "x"}, {"issued_to": "x"},
                 {"issued_to": "x", "purpose": "y", "extra": 1}):
        response = world.client.post(f"/v1/packets/{h.packet_id}/certificates",
                                     headers=h.ex.bob.auth, json=body)
        assert response.status_code == 422, body
    assert last_entry(world).index == before


def test_entries_are_indexed_by_subject_in_the_same_transaction(world: World) -> None:
    h = history(world, share=False)
    engine = make_engine(world.settings.resolved_database_url())
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(LedgerSubject.ledger_index, LedgerSubject.action).where(
                LedgerSubject.subject_type == "packet",
                LedgerSubject.subject_id == h.packet_id)).all()
    finally:
        engine.dispose()
    logged = [(e.index, e.action) for e in world.entries()
              if dict(e.subject) == {"type": "packet", "id": h.packet_id}]
    assert sorted((int(i), a) for i, a in rows) == logged


def test_seal_key_is_published_and_stable(world: World) -> None:
    first = world.client.get("/v1/certificates/key")
    assert first.status_code == 200
    assert first.headers["content-type"].startswith("text/plain")
    assert first.text == world.client.get("/v1/certificates/key").text
    assert first.text.startswith("test.cadena/ledger/certificates+")
    assert (world.settings.data_dir / "certificate-seal.key").stat().st_mode & 0o077 == 0


def test_only_the_requester_collects_others_are_refused_and_logged(world: World) -> None:
    h = history(world, share=False)
    started = h.issue()
    assert started.status_code == 202, started.text
    url = f"/v1/certificates/{started.json()['id']}"
    sign_checkpoint_now(world)
    for stranger in (h.ex.alice, h.ex.carol):
        assert_denied(world, world.client.get(url, headers=stranger.auth), 404, "not-found",
                      "certificate.collect", "no-such-certificate")
    unknown = world.client.get("/v1/certificates/00000000-0000-7000-8000-000000000000",
                               headers=h.ex.bob.auth)
    assert_denied(world, unknown, 404, "not-found", "certificate.collect", "no-such-certificate")
    assert world.client.get(url, headers=h.ex.bob.auth).status_code == 200
    entry = last_entry(world)
    assert (entry.action, entry.outcome) == ("certificate.collect", "granted")


def test_a_pending_certificate_hands_out_nothing_and_logs_nothing(world: World) -> None:
    h = history(world, share=False)
    started = h.issue()
    before = last_entry(world).index
    pending = world.client.get(started.headers["Location"], headers=h.ex.bob.auth)
    assert pending.status_code == 202, pending.text
    assert pending.json()["detail"] == "waiting for the next checkpoint to cover the issue entry"
    assert last_entry(world).index == before


def test_reissue_of_an_unknown_certificate_is_refused_and_logged(world: World) -> None:
    h = history(world, share=False)
    response = world.client.post("/v1/certificates/00000000-0000-7000-8000-000000000000/reissue",
                                 headers=h.ex.bob.auth)
    assert_denied(world, response, 404, "not-found", "certificate.issue", "no-such-certificate")
