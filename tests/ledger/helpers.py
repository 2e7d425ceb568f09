"""Shared builders for the ledger tests: drafts, a fixed log key, small ledgers."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from nacl.signing import SigningKey

from ledger import Actor, EntryDraft, Ledger, MemoryStorage, NoteSigner, NoteVerifier

ORIGIN = "cadena.test/ledger"
LOG_KEY = SigningKey(hashlib.sha256(b"cadena ledger test log key").digest())
SIGNER = NoteSigner(ORIGIN, LOG_KEY)
VERIFIER = NoteVerifier.from_string(SIGNER.verifier_key())
T0 = datetime(2026, 11, 22, 5, 54, 0, 123456, tzinfo=UTC)


def draft(n: int, *, denied: bool = False) -> EntryDraft:
    """A realistic draft, different for every ``n``."""
    return EntryDraft(
        time=T0 + timedelta(milliseconds=n),
        actor=None if n % 7 == 3 else Actor(liaison=f"liaison-{n % 5}", key=f"key-{n % 3}"),
        action="packet.retrieve" if n % 2 else "packet.submit",
        subject={"id": f"0190f3a2-7c1e-7d2b-9a4f-{n:012d}", "type": "packet"},
        outcome="denied" if denied else "granted",
        reason="clearance lapsed" if denied else None,
        details={"channel": f"ch-{n % 4}"} if n % 3 else {},
    )


def build_ledger(size: int, checkpoints: Sequence[int] = ()) -> tuple[MemoryStorage, Ledger]:
    """A ledger of ``size`` entries with signed checkpoints at the given sizes."""
    storage = MemoryStorage()
    ledger = Ledger(storage)
    done = 0
    for target in [*sorted(set(checkpoints)), size]:
        if target > done:
            ledger.append_many(draft(n, denied=n % 11 == 5) for n in range(done, target))
            done = target
        if target in checkpoints:
            ledger.checkpoint(SIGNER, ORIGIN)
    return storage, ledger
