"""A certificate is handed out only once its proofs are against a cosigned checkpoint.

Issue 18, items 1 and 2: the witnesses here are real ``cadena witness serve``
processes on loopback, with a quorum of two. The certificate must verify as
collected, with the project's verifier and with an independent tlog-proof
check written from the C2SP specs (``tests/certificates/tlog_check.py``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from app.witnesses.witnessing import Witnessing
from client.certificate.verify import Trust, check_certificate, verify_certificate
from custody import LoggedEntry, parse_bundle, parse_policy
from tests.app.conftest import World, sign_checkpoint_now
from tests.app.test_packets_support import last_entry
from tests.certificates import tlog_check
from tests.certificates.helpers import History, collect, history
from tests.certificates.witness_processes import WitnessNode, witnesses


def _register(world: World, node: WitnessNode) -> None:
    response = world.client.post("/v1/witnesses", headers=world.coordinator.auth, json={
        "name": node.name.split(".")[0], "url": node.url, "verifier_key": node.verifier_key})
    assert response.status_code == 201, response.text


@contextmanager
def _registered_witnesses(world: World, tmp_path: Path, *,
                          serving: bool = True) -> Iterator[list[WitnessNode]]:
    """Two real witness processes for the world's ledger key, registered with the server."""
    log_key = world.client.get("/v1/ledger/key").text.strip()
    with witnesses(tmp_path, log_key, 2, serving=serving) as nodes:
        for node in nodes:
            _register(world, node)
        yield nodes


def _witness_round(world: World) -> None:
    """One round of the service's collector, as its background thread runs it."""
    collector = Witnessing(world.client.app.state.sessions, 3600)  # type: ignore[attr-defined]
    try:
        collector.run_round(timeout=15)
    finally:
        collector.stop()


def _latest_size(world: World) -> int:
    return int(world.client.get("/v1/ledger/checkpoint").text.split("\n")[1])


def _independently_checked(data: bytes) -> int:
    """Every proof, by the spec-written check under the certificate's own policy."""
    certificate = parse_bundle(data).certificate
    policy = tlog_check.parse_policy(certificate.policy)
    for item in certificate.events + certificate.enrolments:
        tlog_check.check_tlog_proof(item.entry, item.proof, policy)
    return len(certificate.events) + len(certificate.enrolments)


@pytest.fixture
def quorum_of_two(world: World, monkeypatch: pytest.MonkeyPatch) -> World:
    """The service requires two witness cosignatures on every certificate's checkpoint."""
    monkeypatch.setattr(world.settings, "witness_quorum", 2)
    return world


def _issued(h: History) -> str:
    started = h.issue()
    assert started.status_code == 202, started.text
    body = started.json()
    assert body["status"] == "pending"
    assert started.headers["Location"] == f"/v1/certificates/{body['id']}"
    return str(body["id"])


def test_issue_records_the_entry_and_signs_no_checkpoint(quorum_of_two: World,
                                                         tmp_path: Path) -> None:
    world = quorum_of_two
    with _registered_witnesses(world, tmp_path, serving=False):
        h = history(world, share=False)
        sign_checkpoint_now(world)
        before = _latest_size(world)
        certificate_id = _issued(h)
        entry = last_entry(world)
        assert (entry.action, entry.details["certificate"]) == ("certificate.issue",
                                                                 certificate_id)
        assert _latest_size(world) == before  # DESIGN: checkpoints on an interval only


def test_certificate_with_two_real_witnesses_verifies_as_collected(quorum_of_two: World,
                                                                  tmp_path: Path) -> None:
    world = quorum_of_two
    with _registered_witnesses(world, tmp_path):
        h = history(world, share=False)
        certificate_id = _issued(h)
        sign_checkpoint_now(world)
        _witness_round(world)
        data = collect(h, certificate_id)
    bundle = verify_certificate(data, Trust(seal_key=h.seal_key()))
    assert bundle.certificate.id == certificate_id
    assert "group witnesses all witness1 witness2" in bundle.certificate.policy
    cert = bundle.certificate
    assert _independently_checked(data) == len(cert.events) + len(cert.enrolments)
    note = bundle.certificate.events[0].proof.split("\n\n", 1)[1]
    assert note.count("\u2014 witness") == 2


def test_witnesses_down_leave_the_certificate_pending_never_invalid(quorum_of_two: World,
                                                                    tmp_path: Path) -> None:
    world = quorum_of_two
    with _registered_witnesses(world, tmp_path, serving=False) as nodes:
        h = history(world, share=False)
        certificate_id = _issued(h)
        sign_checkpoint_now(world)
        _witness_round(world)  # both refuse connections
        pending = world.client.get(f"/v1/certificates/{certificate_id}", headers=h.ex.bob.auth)
        assert pending.status_code == 202, pending.text
        assert pending.headers["Retry-After"].isdigit()
        assert pending.json() | {"id": certificate_id} == {
            **pending.json(), "status": "pending", "cosignatures": 0, "required": 2}
        for node in nodes:
            node.start()
        _witness_round(world)
        data = collect(h, certificate_id)
    assert check_certificate(data, Trust(seal_key=h.seal_key())).ok
    _independently_checked(data)


def test_collecting_twice_gives_the_same_sealed_bytes(quorum_of_two: World,
                                                     tmp_path: Path) -> None:
    world = quorum_of_two
    with _registered_witnesses(world, tmp_path):
        h = history(world, share=False)
        certificate_id = _issued(h)
        sign_checkpoint_now(world)
        _witness_round(world)
        first = collect(h, certificate_id)
        assert world.client.get(f"/v1/packets/{h.packet_id}", headers=h.ex.bob.auth).is_success
        sign_checkpoint_now(world)
        _witness_round(world)
        assert collect(h, certificate_id) == first
    assert last_entry(world).action == "certificate.collect"


def test_reissue_seals_a_new_version_against_a_newer_cosigned_checkpoint(
        quorum_of_two: World, tmp_path: Path) -> None:
    world = quorum_of_two
    with _registered_witnesses(world, tmp_path):
        h = history(world, share=False)
        first_id = _issued(h)
        sign_checkpoint_now(world)
        _witness_round(world)
        first = parse_bundle(collect(h, first_id))
        again = world.client.post(f"/v1/certificates/{first_id}/reissue", headers=h.ex.bob.auth)
        assert again.status_code == 202, again.text
        second_id = again.json()["id"]
        assert last_entry(world).details["reissue_of"] == first_id
        sign_checkpoint_now(world)
        _witness_round(world)
        data = collect(h, second_id)
    second = verify_certificate(data, Trust(seal_key=h.seal_key()))
    sizes = [int(b.certificate.events[0].proof.split("\n\n", 1)[1].split("\n")[1])
             for b in (first, second)]
    assert sizes[1] > sizes[0]
    assert (second.certificate.issued_to, second.certificate.purpose) == (
        first.certificate.issued_to, first.certificate.purpose)
    _independently_checked(data)


def test_the_seal_covers_every_cosignature_line(quorum_of_two: World, tmp_path: Path) -> None:
    world = quorum_of_two
    with _registered_witnesses(world, tmp_path):
        h = history(world, share=False)
        certificate_id = _issued(h)
        sign_checkpoint_now(world)
        _witness_round(world)
        bundle = parse_bundle(collect(h, certificate_id))
    ledger_key = world.client.get("/v1/ledger/key").text.strip()
    lenient = parse_policy(f"log {ledger_key}\nquorum none\n")  # the court asks no witness

    def strip_last_line(item: LoggedEntry) -> LoggedEntry:
        return replace(item, proof=item.proof.rstrip("\n").rsplit("\n", 1)[0] + "\n")

    cert = bundle.certificate
    stripped = replace(bundle, certificate=replace(
        cert, events=tuple(map(strip_last_line, cert.events)),
        enrolments=tuple(map(strip_last_line, cert.enrolments))))
    report = check_certificate(stripped.to_bytes(), Trust(seal_key=h.seal_key(), policy=lenient))
    assert [c.name for c in report.failures()] == ["seal"]
    assert json.loads(stripped.to_bytes())["certificate"]["id"] == certificate_id
