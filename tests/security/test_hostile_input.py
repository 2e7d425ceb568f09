"""Hostile input, by hand: a catalogue of malformed and malicious requests.

Each request gets a clear RFC 9457 problem (DESIGN.md invariant 6) and
changes nothing: malformed input leaves the ledger as it was, and a refusal
of access leaves exactly one denied entry (invariant 2). Runs on SQLite and
PostgreSQL through the ``world`` fixture of ``tests/app``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from app.models.packet import Packet
from crypto import Envelope, InvalidArgument, make_receipt
from tests.app.conftest import Person, World
from tests.app.test_packets_support import (
    assert_denied,
    assert_problem,
    envelope_b64,
    exchange,
    ledger_size,
    make_channel,
    opened_by,
    packet_id,
    seal,
    sha256,
    signed_body,
    submit,
    upload,
)

PROBLEM = "application/problem+json"


def _is_problem(response: object, *statuses: int) -> dict[str, object]:
    status = getattr(response, "status_code", 0)
    assert status in statuses, getattr(response, "text", "")
    headers = getattr(response, "headers", {})
    assert headers["content-type"] == PROBLEM
    body: dict[str, object] = getattr(response, "json")()  # noqa: B009
    assert body["status"] == status
    return body


def _packet_stored(world: World, pid: str) -> bool:
    from app.ledger.engine import make_engine

    engine = make_engine(world.settings.resolved_database_url())
    try:
        with engine.connect() as conn:
            return conn.execute(select(Packet.id).where(Packet.id == pid)).first() is not None
    finally:
        engine.dispose()


# -- sizes ------------------------------------------------------------------------------


def test_declared_oversized_json_body_is_413_and_changes_nothing(world: World) -> None:
    before = ledger_size(world)
    body = b'{"liaison_id": "' + b"a" * world.settings.max_json_bytes + b'"}'
    response = world.client.post("/v1/auth/challenge", content=body,
                                 headers={"Content-Type": "application/json"})
    assert_problem(response, 413, "too-large")
    assert ledger_size(world) == before


def test_streamed_oversized_json_body_is_413(world: World) -> None:
    alice = world.liaison("alice", "CO")
    before = ledger_size(world)
    chunk = b" " * 65536

    def chunks() -> Iterator[bytes]:
        yield b'{"envelope": "'
        for _ in range(world.settings.max_json_bytes // len(chunk) + 2):
            yield chunk
        yield b'"}'

    response = world.client.post("/v1/packets", content=chunks(),
                                 headers={**alice.auth, "Content-Type": "application/json"})
    assert_problem(response, 413, "too-large")
    assert ledger_size(world) == before


def test_blob_uploads_have_their_own_limit(world: World) -> None:
    alice = world.liaison("alice", "CO")
    data = b"c" * (world.settings.max_json_bytes + 1024)
    assert upload(world, alice, data).status_code == 201


# -- malformed JSON and encodings -------------------------------------------------------


def test_deeply_nested_json_is_a_clean_4xx(world: World) -> None:
    before = ledger_size(world)
    depth = 100_000
    body = '{"envelope": ' + "[" * depth + "]" * depth + "}"
    for path in ("/v1/packets", "/v1/auth/challenge", "/v1/states"):
        response = world.client.post(path, content=body.encode(), headers={
            **world.coordinator.auth, "Content-Type": "application/json"})
        _is_problem(response, 400, 422)
    assert ledger_size(world) == before


def test_invalid_utf8_is_a_clean_4xx(world: World) -> None:
    before = ledger_size(world)
    response = world.client.post("/v1/auth/challenge", content=b'{"liaison_id": "\xff\xfe\xfd"}',
                                 headers={"Content-Type": "application/json"})
    _is_problem(response, 400, 422)
    response = world.client.post("/v1/states", content=b'{"code": "Z\xc3", "name": "x"}',
                                 headers={**world.coordinator.auth,
                                          "Content-Type": "application/json"})
    _is_problem(response, 400, 422)
    assert ledger_size(world) == before


def test_nul_characters_never_make_a_5xx(world: World) -> None:
    # PostgreSQL text cannot hold NUL: the refusal is bad input (422), not an outage (503).
    before = ledger_size(world)
    response = world.client.post("/v1/states", headers=world.coordinator.auth, json={
        "code": "ZZ", "name": "Zed\x00land", "joining_note": "note\x00"})
    if response.status_code != 201:  # SQLite stores the text as sent
        _is_problem(response, 422)
        assert ledger_size(world) == before
    alice = world.liaison("alice", "CO")
    response = world.client.get("/v1/packets", params={"case_reference": "case\x00one"},
                                headers=alice.auth)
    assert response.status_code < 500, response.text


def test_invalid_base64_is_422_and_changes_nothing(world: World) -> None:
    ex = exchange(world)
    _, pid = ex.sent()
    before = ledger_size(world)
    for envelope in ("AAAAA", "AAA=AAAA", "A" * 4):
        response = world.client.post("/v1/packets", headers=ex.alice.auth,
                                     json={"envelope": envelope})
        _is_problem(response, 422)
    response = world.client.post(f"/v1/packets/{pid}/receipts", headers=ex.bob.auth,
                                 json={"signed": "AAAAA", "signature": "A" * 86 + "=="})
    _is_problem(response, 422)
    assert ledger_size(world) == before


def test_huge_integers_are_refused(world: World) -> None:
    auditor = world.liaison("auditor", "CO", role="auditor")
    before = ledger_size(world)
    huge = "9" * 40
    for path, params in (("/v1/ledger/entries", {"start": huge}),
                         ("/v1/ledger/entries", {"limit": huge}),
                         ("/v1/ledger/proofs/inclusion", {"index": huge, "size": "1"}),
                         ("/v1/ledger/proofs/consistency", {"from": "1", "to": huge})):
        _is_problem(world.client.get(path, params=params, headers=auditor.auth), 422)
    body = '{"liaison_id": "auditor", "level": "SECRET", "valid_from": ' + "9" * 5000 + "}"
    response = world.client.post("/v1/clearances", content=body.encode(), headers={
        **world.coordinator.auth, "Content-Type": "application/json"})
    _is_problem(response, 400, 422)
    assert ledger_size(world) == before


OUT_OF_RANGE = [
    ("/v1/ledger/proofs/inclusion", {"index": "-1", "size": "1"}, (422,)),
    ("/v1/ledger/proofs/inclusion", {"index": "0", "size": "0"}, (422,)),
    ("/v1/ledger/proofs/inclusion", {"index": "7", "size": "7"}, (400,)),
    ("/v1/ledger/proofs/inclusion", {"index": "0", "size": "3"}, (400, 404, 409)),
    ("/v1/ledger/proofs/consistency", {"from": "0", "to": "2"}, (400, 422)),
    ("/v1/ledger/proofs/consistency", {"from": "3", "to": "2"}, (400,)),
    ("/v1/ledger/proofs/consistency", {"from": "-3", "to": "2"}, (422,)),
    ("/v1/ledger/entries", {"start": "-1"}, (422,)),
]


def test_negative_and_out_of_range_proof_indices(world: World) -> None:
    auditor = world.liaison("auditor", "CO", role="auditor")
    for path, params, statuses in OUT_OF_RANGE:
        _is_problem(world.client.get(path, params=params, headers=auditor.auth), *statuses)


# -- paths ------------------------------------------------------------------------------


def test_path_traversal_in_attachment_names_is_refused_at_sealing(world: World) -> None:
    ex = exchange(world)
    for name in ("../../etc/passwd", "..", "a/b", "/abs", "C:\\x", "ok\x00.txt"):
        with pytest.raises(InvalidArgument):
            ex.seal(attachments={name: b"x"})


def test_path_traversal_in_blob_ids_is_refused(world: World) -> None:
    alice = world.liaison("alice", "CO")
    before = ledger_size(world)
    for path in ("/v1/blobs/..%2F..%2F..%2Fetc%2Fpasswd", "/v1/blobs/../../etc/passwd",
                 "/v1/blobs/" + "A" * 64, "/v1/blobs/" + "0" * 63 + "%00"):
        response = world.client.put(path, content=b"x", headers=alice.auth)
        _is_problem(response, 404, 405, 422)
    assert ledger_size(world) == before
    assert not (world.settings.data_dir / "etc").exists()


# -- replays and forgeries --------------------------------------------------------------


def test_replayed_submission_is_409_and_logged(world: World) -> None:
    ex = exchange(world)
    sealed, _ = ex.sent()
    response = world.client.post("/v1/packets", headers=ex.alice.auth,
                                 json={"envelope": envelope_b64(sealed)})
    assert_denied(world, response, 409, "packet-conflict", "packet.submit", "packet-id-used")


def test_replayed_receipt_is_409_and_logged(world: World) -> None:
    ex = exchange(world)
    sealed, pid = ex.sent()
    receipt = make_receipt(opened_by(sealed, ex.alice, ex.bob), ex.bob.id, ex.bob.keys)
    body = signed_body(receipt.receipt, receipt.signature)
    first = world.client.post(f"/v1/packets/{pid}/receipts", headers=ex.bob.auth, json=body)
    assert first.status_code == 201, first.text
    again = world.client.post(f"/v1/packets/{pid}/receipts", headers=ex.bob.auth, json=body)
    assert_denied(world, again, 409, "packet-conflict", "packet.receipt", "receipt-already-given")


def test_packet_signed_by_another_liaisons_key_is_refused(world: World) -> None:
    ex = exchange(world)
    impostor = Person(ex.alice.id, ex.carol.keys)  # carol's key, alice's name
    sealed = seal(impostor, [ex.bob], ex.channel)
    response = submit(world, ex.alice, sealed)
    assert_denied(world, response, 422, "bad-signature", "packet.submit", "bad-signature")
    response = submit(world, ex.carol, sealed, upload_streams=False)
    body = _is_problem(response, 403, 422)
    assert "ledger_index" in body
    assert not _packet_stored(world, packet_id(sealed))


def test_wrapped_key_for_a_non_member_is_refused(world: World) -> None:
    ex = exchange(world)
    dave = world.liaison("dave", "MX")  # cleared, but not a member of the channel
    make_channel(world, "other", [dave])
    sealed = ex.seal([ex.bob, dave])
    response = submit(world, ex.alice, sealed)
    assert_denied(world, response, 403, "recipient-not-eligible", "packet.submit",
                  "recipient-not-eligible", detail="dave")
    assert not _packet_stored(world, packet_id(sealed))


def test_header_fields_that_disagree_with_the_signed_header_are_refused(world: World) -> None:
    ex = exchange(world)
    sealed = ex.seal()
    for stream in sealed.streams:
        assert upload(world, ex.alice, stream).status_code in (200, 201)
    header = json.loads(sealed.envelope.header)
    header["classification"] = "RESTRICTED"  # was CONFIDENTIAL when signed
    tampered = Envelope(json.dumps(header, separators=(",", ":"), sort_keys=True).encode(),
                        sealed.envelope.signature, sealed.envelope.wrapped_keys)
    response = world.client.post("/v1/packets", headers=ex.alice.auth, json={
        "envelope": base64.b64encode(tampered.to_bytes()).decode()})
    assert_denied(world, response, 422, "bad-signature", "packet.submit", "bad-signature")
    smuggled = Envelope(sealed.envelope.header, sealed.envelope.signature,
                        {**sealed.envelope.wrapped_keys,
                         ex.carol.id: next(iter(sealed.envelope.wrapped_keys.values()))})
    before = ledger_size(world)
    response = world.client.post("/v1/packets", headers=ex.alice.auth, json={
        "envelope": base64.b64encode(smuggled.to_bytes()).decode()})
    _is_problem(response, 422)
    assert ledger_size(world) in (before, before + 1)
    assert not _packet_stored(world, packet_id(sealed))


def test_blob_uploaded_under_another_digest_is_refused(world: World) -> None:
    alice = world.liaison("alice", "CO")
    before = ledger_size(world)
    response = upload(world, alice, b"ciphertext", digest=sha256(b"other"))
    assert_problem(response, 422, "digest-mismatch")
    assert ledger_size(world) == before
