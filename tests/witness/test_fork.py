"""Forks: a witness never cosigns two inconsistent checkpoints and keeps both as evidence."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from fastapi.testclient import TestClient
from hypothesis import event, given
from hypothesis import strategies as st

from ledger import verify_cosignature
from tests.ledger import reference
from tests.witness.conftest import Clock, make_witness
from tests.witness.helpers import FakeLog, witness_signer
from tests.witness.test_server import WITNESS_KEY, cosign, post
from witness.errors import BadProof, Conflict, MalformedRequest
from witness.witness import Witness


def test_a_forked_checkpoint_of_the_same_size_is_refused_and_kept(
        http: TestClient, log: FakeLog, witness: Witness) -> None:
    cosign(http, log, 0, 8)
    fork = log.fork(5, 8)
    assert fork.root(8) != log.root(8)
    status, _, text = post(http, fork.request(8, 8))
    assert (status, text) == (409, "8\n")
    [evidence] = witness.store.evidence()
    assert evidence.kind == "fork"
    assert evidence.cosigned_note == log.note(8)
    assert evidence.conflicting_note == fork.note(8)


def test_a_fork_is_kept_whatever_old_size_came_with_it(
        http: TestClient, log: FakeLog, witness: Witness) -> None:
    cosign(http, log, 0, 8)
    assert post(http, log.fork(2, 8).request(0, 8))[0] == 409
    assert [e.kind for e in witness.store.evidence()] == ["fork"]


def test_a_forked_extension_fails_its_proof_and_is_kept(
        http: TestClient, log: FakeLog, witness: Witness) -> None:
    cosign(http, log, 0, 8)
    fork = log.fork(6, 12)  # diverged before 8: no proof from our 8 can reach its 12
    assert post(http, fork.request(8, 12))[0] == 422
    [evidence] = witness.store.evidence()
    assert (evidence.kind, evidence.old_size) == ("inconsistent", 8)
    assert evidence.proof == tuple(fork.proof(8, 12))
    assert evidence.conflicting_note == fork.note(12)
    cosign(http, log, 8, 16)  # the honest log goes on


def test_evidence_is_kept_once_per_conflicting_note(
        http: TestClient, log: FakeLog, witness: Witness) -> None:
    cosign(http, log, 0, 8)
    fork = log.fork(3, 8)
    for _ in range(3):
        post(http, fork.request(8, 8))
    assert len(witness.store.evidence()) == 1


def test_evidence_survives_a_restart(tmp_path: Path, log: FakeLog, clock: Clock) -> None:
    state = tmp_path / "state.db"
    witness = make_witness(state, log, clock)
    witness.add_checkpoint(log.request(0, 8))
    fork = log.fork(4, 8)
    try:
        witness.add_checkpoint(fork.request(8, 8))
    except Conflict:
        pass
    assert make_witness(state, log, clock).store.evidence()[0].conflicting_note == fork.note(8)


# -- property: over any sequence of honest, forked and stale submissions -----------

SIZE = 12


@dataclass(frozen=True)
class Submit:
    """One submission: from which log, at which size, with which old size."""

    forked: bool
    size: int
    old: int | None  # None: the size the witness last cosigned (an up-to-date client)


submissions = st.lists(st.builds(Submit, st.booleans(), st.integers(0, SIZE),
                                 st.one_of(st.none(), st.integers(0, SIZE))),
                       min_size=1, max_size=20)


def _expected(latest: tuple[int, bytes] | None, old: int, log: FakeLog, size: int) -> str:
    """What C2SP tlog-witness says must happen, from the witness's last cosigned tree."""
    latest_size = latest[0] if latest else 0
    if old > size:
        return "malformed"
    if latest is not None and size == latest[0] and log.root(size) != latest[1]:
        return "fork"
    if old != latest_size:
        return "conflict"
    if latest is None or latest_size == 0 or size == latest_size:
        return "cosigned"
    return "cosigned" if log.root(latest_size) == latest[1] else "inconsistent"


def _submit(witness: Witness, log: FakeLog, old: int, size: int) -> str:
    try:
        line = witness.add_checkpoint(log.request(old, size))
    except Conflict:
        return "conflict"
    except BadProof:
        return "bad-proof"
    except MalformedRequest:
        return "malformed"
    verify_cosignature(log.checkpoint(size), line, WITNESS_KEY)
    return "cosigned"


def _run(witness: Witness, logs: dict[bool, FakeLog],
         steps: list[Submit]) -> list[tuple[str, str]]:
    """Play ``steps``; check each answer; return the (kind, note) expected as evidence."""
    cosigned: list[tuple[int, bytes, FakeLog]] = []
    latest: tuple[int, bytes] | None = None
    evidence: list[tuple[str, str]] = []
    for step in steps:
        log = logs[step.forked]
        old = (latest[0] if latest else 0) if step.old is None else min(step.old, step.size)
        expected = _expected(latest, old, log, step.size)
        event(expected)
        got = _submit(witness, log, old, step.size)
        assert got == {"fork": "conflict", "inconsistent": "bad-proof"}.get(expected, expected)
        if expected in ("fork", "inconsistent"):
            pair = (expected, log.note(step.size))
            if pair not in evidence:
                evidence.append(pair)
        if got == "cosigned":
            latest = (step.size, log.root(step.size))
            cosigned.append((step.size, log.root(step.size), log))
    # Whatever happened, every cosigned tree is a prefix of every later cosigned tree.
    for i, (size, root, _) in enumerate(cosigned):
        for later_size, _, later_log in cosigned[i:]:
            assert later_size >= size
            assert reference.mth(later_log.leaves[:size]) == root, "cosigned a fork"
    return evidence


@given(steps=submissions, at=st.integers(0, SIZE - 1))
def test_never_cosigns_inconsistent_checkpoints(steps: list[Submit], at: int) -> None:
    honest = FakeLog().grow(SIZE)
    logs = {False: honest, True: honest.fork(at, SIZE)}
    with tempfile.TemporaryDirectory() as tmp:
        witness = make_witness(Path(tmp) / "state.db", honest, Clock())
        expected = _run(witness, logs, steps)
        kept = witness.store.evidence()
    assert [(e.kind, e.conflicting_note) for e in kept] == expected
    assert all(e.cosigned_note != e.conflicting_note for e in kept)


def test_the_witness_signer_is_the_one_the_tests_verify() -> None:
    assert witness_signer().verifier_key() == str(WITNESS_KEY)
