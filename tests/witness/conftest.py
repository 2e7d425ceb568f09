"""Fixtures for the witness: a log double, a witness on a temporary state file.

The service-side tests reuse the ``world`` fixture of ``tests/app``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ledger import NoteVerifier
from tests.app.conftest import World, world  # noqa: F401  (the service fixture, reused)
from tests.witness.helpers import FakeLog, witness_signer
from witness.server import create_app
from witness.store import WitnessStore
from witness.witness import Witness

NOW = 1_790_000_000


class Clock:
    """A settable clock, in POSIX seconds."""

    def __init__(self, now: int = NOW) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def log() -> FakeLog:
    """An honest log with 16 leaves."""
    return FakeLog().grow(16)


@pytest.fixture
def clock() -> Clock:
    """The witness's clock."""
    return Clock()


def make_witness(state: Path, log: FakeLog, clock: Clock) -> Witness:
    """A witness following ``log`` with its state in ``state``."""
    verifier = NoteVerifier.from_string(log.signer.verifier_key())
    return Witness(witness_signer(), {log.origin: (verifier,)}, WitnessStore(state), clock)


@pytest.fixture
def witness(tmp_path: Path, log: FakeLog, clock: Clock) -> Witness:
    """A witness following ``log``, never having cosigned."""
    return make_witness(tmp_path / "witness.db", log, clock)


@pytest.fixture
def http(witness: Witness) -> Iterator[TestClient]:
    """The witness's HTTP interface, in process."""
    with TestClient(create_app(witness)) as client:
        yield client


__all__ = ["Clock", "World", "make_witness"]
