"""The witness's add-checkpoint over HTTP: the happy path and every status C2SP defines."""

from __future__ import annotations

import base64
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from nacl.signing import SigningKey

from ledger import (
    Checkpoint,
    KeyLogHead,
    NoteSigner,
    NoteVerifier,
    SignatureError,
    add_signature_lines,
    extension_line,
    key_log_head,
    sign_checkpoint,
    verify_cosignature,
)
from tests.witness.conftest import NOW, Clock, make_witness
from tests.witness.helpers import FakeLog, witness_signer
from witness.server import SIZE_MEDIA_TYPE, create_app
from witness.store import WitnessStore
from witness.submission import MAX_BODY_BYTES
from witness.witness import Witness

WITNESS_KEY = NoteVerifier.from_string(witness_signer().verifier_key())


def post(http: TestClient, body: bytes) -> tuple[int, str, str]:
    """POST an add-checkpoint body; return status, content type and text."""
    response = http.post("/add-checkpoint", content=body)
    return response.status_code, response.headers.get("content-type", ""), response.text


def cosign(http: TestClient, log: FakeLog, old: int, new: int) -> str:
    """Submit honestly and return the cosignature line (asserting a 200)."""
    status, _, text = post(http, log.request(old, new))
    assert status == 200, text
    return text


def test_first_checkpoint_is_cosigned_from_size_zero(http: TestClient, log: FakeLog) -> None:
    status, media, text = post(http, log.request(0, 5))
    assert status == 200
    assert media.startswith("text/plain")
    assert text.startswith("\u2014 witness.example/w1 ")
    assert text.endswith("\n")
    assert text.count("\n") == 1
    assert verify_cosignature(log.checkpoint(5), text, WITNESS_KEY) == NOW


def test_cosignature_merges_into_a_note_that_verifies(http: TestClient, log: FakeLog) -> None:
    note = add_signature_lines(log.note(5), [cosign(http, log, 0, 5)])
    lines = note.rstrip("\n").split("\n")
    assert len(lines) == 6  # three body lines, the blank line, log signature, cosignature
    verify_cosignature(log.checkpoint(5), lines[-1], WITNESS_KEY)


def test_consistent_checkpoints_are_cosigned_in_turn(http: TestClient, log: FakeLog,
                                                     clock: Clock) -> None:
    cosign(http, log, 0, 3)
    for old, new in [(3, 4), (4, 7), (7, 8), (8, 16)]:
        clock.now += 1
        line = cosign(http, log, old, new)
        assert verify_cosignature(log.checkpoint(new), line, WITNESS_KEY) == clock.now


def test_the_same_checkpoint_is_cosigned_again(http: TestClient, log: FakeLog) -> None:
    cosign(http, log, 0, 6)
    cosign(http, log, 6, 6)


def test_extra_signatures_by_unknown_keys_are_ignored(http: TestClient, log: FakeLog) -> None:
    stranger = NoteSigner(log.origin, SigningKey(bytes(32)))
    note = add_signature_lines(log.note(4), [stranger.sign_line(log.checkpoint(4).body())])
    status, _, _ = post(http, log.request(0, 4, note=note))
    assert status == 200


@pytest.mark.parametrize("body", [
    b"",
    b"old 0\n",
    b"old 0",
    b"old 01\n\n",
    b"old -1\n\n",
    b"new 0\n\n",
    b"old 0 \n\n",
    b"old 99999999999999999999\n\n",
    b"old 0\nnot base64!\n\n",
    b"old 0\nAAAA\n\n",
    b"\xff\xfe\n\n",
])
def test_malformed_bodies_are_400(http: TestClient, log: FakeLog, body: bytes) -> None:
    note = log.note(4).encode()
    status, _, _ = post(http, body + note if body.endswith(b"\n\n") else body)
    assert status == 400


def test_a_malformed_checkpoint_is_400(http: TestClient, log: FakeLog) -> None:
    body = log.request(0, 4)
    assert post(http, body.replace(b"\n4\n", b"\nfour\n"))[0] == 400
    assert post(http, b"old 0\n\nno signatures here\n")[0] == 400


def test_more_than_63_proof_lines_is_400(http: TestClient, log: FakeLog) -> None:
    assert post(http, log.request(0, 4, proof=[bytes(32)] * 64))[0] == 400


def test_old_size_beyond_the_checkpoint_is_400(http: TestClient, log: FakeLog) -> None:
    cosign(http, log, 0, 4)
    assert post(http, log.request(5, 4, proof=[]))[0] == 400


def test_an_unknown_origin_is_404(http: TestClient) -> None:
    other = FakeLog(NoteSigner("other.example/log", SigningKey(bytes(32)))).grow(4)
    assert post(http, other.request(0, 4))[0] == 404


def test_a_checkpoint_signed_by_another_key_is_403(http: TestClient, log: FakeLog) -> None:
    impostor = FakeLog(NoteSigner(log.origin, SigningKey(bytes(32))), log.leaves)
    assert post(http, impostor.request(0, 4))[0] == 403


def test_a_bad_signature_by_the_log_key_is_403(http: TestClient, log: FakeLog) -> None:
    note = log.note(4)
    body, _, sig = note.rpartition(" ")
    blob = bytearray(base64.b64decode(sig))
    blob[-1] ^= 1
    forged = body + " " + base64.b64encode(bytes(blob)).decode() + "\n"
    assert post(http, log.request(0, 4, note=forged))[0] == 403


def test_a_wrong_old_size_is_409_with_the_latest_size(http: TestClient, log: FakeLog) -> None:
    status, media, text = post(http, log.request(3, 4))
    assert (status, media, text) == (409, SIZE_MEDIA_TYPE, "0\n")
    cosign(http, log, 0, 7)
    for old in (0, 3, 8):
        status, media, text = post(http, log.request(old, 10))
        assert (status, media, text) == (409, SIZE_MEDIA_TYPE, "7\n")


def test_a_bad_proof_is_422_and_never_cosigned(http: TestClient, log: FakeLog,
                                               witness: Witness) -> None:
    cosign(http, log, 0, 5)
    proof = log.proof(5, 9)
    proof[0] = bytes(32)
    assert post(http, log.request(5, 9, proof=proof))[0] == 422
    assert post(http, log.request(5, 9, proof=[]))[0] == 422
    assert post(http, log.request(0, 9))[0] == 409
    latest = witness.store.latest(log.origin)
    assert latest is not None
    assert latest.size == 5


def test_a_proof_from_size_zero_must_be_empty(http: TestClient, log: FakeLog) -> None:
    assert post(http, log.request(0, 4, proof=[bytes(32)]))[0] == 422
    cosign(http, log, 0, 4)
    assert post(http, log.request(4, 4, proof=[bytes(32)]))[0] == 422


def test_a_body_too_large_is_413(http: TestClient) -> None:
    assert post(http, b"old 0\n" + b"A" * MAX_BODY_BYTES)[0] == 413


def test_only_post_is_served(http: TestClient) -> None:
    assert http.get("/add-checkpoint").status_code == 405


def test_state_survives_a_restart(tmp_path: Path, log: FakeLog, clock: Clock) -> None:
    state = tmp_path / "state.db"
    with TestClient(create_app(make_witness(state, log, clock))) as first:
        cosign(first, log, 0, 6)
    with TestClient(create_app(make_witness(state, log, clock))) as second:
        assert post(second, log.request(0, 9)) == (409, SIZE_MEDIA_TYPE, "6\n")
        cosign(second, log, 6, 9)


def test_a_log_with_two_keys_is_followed_under_either(tmp_path: Path, log: FakeLog,
                                                      clock: Clock) -> None:
    rotated = FakeLog(NoteSigner(log.origin, SigningKey(bytes(32))), log.leaves)
    keys = tuple(NoteVerifier.from_string(x.signer.verifier_key()) for x in (log, rotated))
    witness = Witness(witness_signer(), {log.origin: keys}, WitnessStore(tmp_path / "s.db"),
                      clock)
    with TestClient(create_app(witness)) as http:
        cosign(http, log, 0, 4)
        cosign(http, rotated, 4, 8)


def test_the_cosignature_time_never_goes_back(http: TestClient, log: FakeLog,
                                              clock: Clock) -> None:
    cosign(http, log, 0, 4)
    clock.now -= 1000
    line = cosign(http, log, 4, 8)
    assert verify_cosignature(log.checkpoint(8), line, WITNESS_KEY) == NOW


def test_racing_submissions_cosign_only_one_extension(http: TestClient, log: FakeLog) -> None:
    log.grow(16)
    cosign(http, log, 0, 4)
    results: list[int] = []
    lock = threading.Lock()

    def submit(new: int) -> None:
        status, _, _ = post(http, log.request(4, new))
        with lock:
            results.append(status)

    threads = [threading.Thread(target=submit, args=(n,)) for n in range(5, 32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(200) == 1
    assert results.count(409) == len(threads) - 1


def test_a_checkpoint_carrying_the_key_log_line_is_cosigned_with_it(http: TestClient,
                                                                    log: FakeLog) -> None:
    # The key log's size and root ride on the checkpoint as an extension
    # line (docs/protocol.md §11.7): the witness cosigns the whole body, so a
    # cosignature on the bare checkpoint does not verify for the keyed one.
    keyed = Checkpoint(log.origin, 5, log.root(5), (extension_line(2, bytes(range(32))),))
    status, _, line = post(http, log.request(0, 5, note=sign_checkpoint(keyed, log.signer)))
    assert status == 200, line
    assert verify_cosignature(keyed, line, WITNESS_KEY) == NOW
    assert key_log_head(keyed) == KeyLogHead(2, bytes(range(32)))
    with pytest.raises(SignatureError):
        verify_cosignature(log.checkpoint(5), line, WITNESS_KEY)
