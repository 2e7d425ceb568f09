"""The service's reading of witness answers, apart from HTTP and the database."""

from __future__ import annotations

import base64

import httpx
import pytest

from app.witnesses.service import Submission
from app.witnesses.witnessing import WitnessFailure, cosignature_from, request_body, witness_size
from tests.witness.helpers import FakeLog, witness_signer
from witness.submission import AddCheckpoint, parse_add_checkpoint

LOG = FakeLog().grow(9)
SIGNER = witness_signer()


def submission(old: int = 4, size: int = 9) -> Submission:
    """A submission of the log double's checkpoint to the tests' witness."""
    return Submission(1, "mx", "http://127.0.0.1:9", SIGNER.verifier_key(), old,
                      tuple(LOG.proof(old, size)), LOG.note(size), LOG.checkpoint(size))


def test_the_request_body_is_what_the_witness_parses() -> None:
    sub = submission()
    assert parse_add_checkpoint(request_body(sub)) == AddCheckpoint(4, sub.proof, sub.note)
    assert request_body(sub) == AddCheckpoint(4, sub.proof, sub.note).body()


def test_the_registered_key_line_is_taken_and_others_are_ignored() -> None:
    other = witness_signer("other.example/w", bytes(32)).cosign(LOG.checkpoint(9), 5)
    same_name = witness_signer(SIGNER.name, bytes(32)).cosign(LOG.checkpoint(9), 6)
    mine = SIGNER.cosign(LOG.checkpoint(9), 7)
    line, timestamp = cosignature_from(submission(), other + same_name + mine)
    assert (line + "\n", timestamp) == (mine, 7)


def test_an_answer_without_the_registered_key_fails() -> None:
    other = witness_signer("other.example/w", bytes(32)).cosign(LOG.checkpoint(9), 5)
    with pytest.raises(WitnessFailure, match="no cosignature"):
        cosignature_from(submission(), other)


def test_a_bad_cosignature_by_the_registered_key_fails() -> None:
    wrong = SIGNER.cosign(LOG.checkpoint(8), 7)  # for another checkpoint
    with pytest.raises(WitnessFailure, match="invalid cosignature"):
        cosignature_from(submission(), wrong)
    name, _, blob = SIGNER.cosign(LOG.checkpoint(9), 7).rstrip("\n").rpartition(" ")
    short = name + " " + base64.b64encode(base64.b64decode(blob)[:20]).decode()
    with pytest.raises(WitnessFailure, match="invalid cosignature"):
        cosignature_from(submission(), short)


def test_an_empty_answer_fails() -> None:
    with pytest.raises(WitnessFailure):
        cosignature_from(submission(), "")


@pytest.mark.parametrize(("body", "size"), [("7\n", 7), ("0\n", 0), ("123456789\n", 123456789)])
def test_a_409_body_is_a_size(body: str, size: int) -> None:
    assert witness_size(httpx.Response(409, text=body)) == size


@pytest.mark.parametrize("body", ["7", "", "-1\n", "seven\n", "1" * 30 + "\n", "7\n8\n"])
def test_a_409_body_that_is_not_a_size_fails(body: str) -> None:
    with pytest.raises(WitnessFailure):
        witness_size(httpx.Response(409, text=body))
