"""Rules for witnesses: registration by coordinators, and keeping what they cosign.

Registering and removing a witness are ledger entries; so is listing them.
Cosignatures are *not* ledger entries: each would grow the tree and call for
a new checkpoint, for ever. They are kept in ``witness_cosignatures`` and
merged into the checkpoint's stored note, which is what
``GET /v1/ledger/checkpoint`` serves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from app.auth.service import Principal
from app.errors import CadenaError, NotFound, RuleRefused
from app.ledger import draft, is_signed_size, ledger_for, now, record
from app.models.witness import Witness, WitnessCosignature
from app.witnesses import repository as repo
from crypto import InvalidPublicKey, check_ed25519_public
from ledger import (
    ALG_COSIGNATURE_V1,
    Checkpoint,
    ConsistencyProofError,
    NoteFormatError,
    NoteVerifier,
    ProofError,
    add_signature_lines,
    merkle,
    parse_checkpoint_body,
    parse_note,
)


class WitnessConflict(RuleRefused):
    """An active witness has that name or that verifier key already."""

    status, code, title = 409, "witness-conflict", "Witness conflict"


class BadWitnessKey(CadenaError):
    """The verifier key is not a C2SP cosignature/v1 (type 0x04) key."""

    status, code, title = 422, "bad-witness-key", "Not a witness verifier key"


def cosigner_key(verifier_key: str) -> NoteVerifier:
    """Parse a witness's verifier key; it must be of signature type 0x04."""
    try:
        verifier = NoteVerifier.from_string(verifier_key)
    except NoteFormatError as exc:
        raise BadWitnessKey(f"bad verifier key: {exc}") from exc
    if verifier.alg != ALG_COSIGNATURE_V1:
        raise BadWitnessKey("a witness key has signature type 0x04 (C2SP tlog-cosignature)")
    try:
        check_ed25519_public(verifier.public_key)
    except InvalidPublicKey as exc:
        raise BadWitnessKey(f"bad verifier key: {exc}") from exc
    return verifier


def register(session: Session, by: Principal, name: str, url: str,
             *, verifier_key: str) -> Witness:
    """Register a witness; logged."""
    verifier = cosigner_key(verifier_key)
    # Taking the ledger's append lock first serializes registrations, so the
    # uniqueness checks below cannot race another process.
    ledger_for(session).storage.lock_head()
    if repo.active_named(session, name) is not None:
        raise WitnessConflict(f"a witness called {name} is registered")
    if repo.active_with_key(session, str(verifier)) is not None:
        raise WitnessConflict("a witness with that verifier key is registered")
    witness = Witness(name=name, url=url.rstrip("/"), verifier_key=str(verifier),
                      key_name=verifier.name, last_size=0, registered_by=by.liaison_id,
                      registered_at=now())
    session.add(witness)
    session.flush()
    record(session, draft(by.actor, "witness.register", {"type": "witness", "id": name},
                          details={"url": witness.url, "verifier_key": witness.verifier_key}))
    return witness


def remove(session: Session, by: Principal, name: str) -> None:
    """Stop submitting checkpoints to a witness (its cosignatures stay); logged."""
    witness = repo.active_named(session, name)
    if witness is None:
        raise NotFound(f"no witness called {name}")
    witness.removed_at = now()
    witness.removed_by = by.liaison_id
    session.flush()
    record(session, draft(by.actor, "witness.remove", {"type": "witness", "id": name},
                          details={"verifier_key": witness.verifier_key}))


def listing(session: Session, by: Principal) -> Sequence[Witness]:
    """The active witnesses; logged."""
    record(session, draft(by.actor, "witness.list", {"type": "witnesses", "id": "*"}))
    return repo.active(session)


@dataclass(frozen=True)
class Submission:
    """One add-checkpoint request to make: to whom, from which size, with which proof."""

    witness_id: int
    name: str
    url: str
    verifier_key: str
    old_size: int
    proof: tuple[bytes, ...]
    note: str
    checkpoint: Checkpoint


def _submission(session: Session, witness: Witness, old_size: int) -> Submission | None:
    ledger = ledger_for(session)
    stored = ledger.storage.latest_checkpoint()
    if stored is None or old_size > stored.size:
        return None
    # C2SP tlog-witness: the proof is empty from size 0 and to the same size;
    # otherwise it is the RFC 9162 consistency proof from the old size.
    proof: tuple[bytes, ...] = ()
    if 0 < old_size < stored.size:
        # The trust rule: proofs start only at signed sizes. Checked by key here,
        # rather than by Ledger.consistency_proof's scan over every checkpoint.
        if not is_signed_size(session, old_size):
            raise ConsistencyProofError(f"no signed checkpoint has tree size {old_size}")
        proof = tuple(merkle.consistency_proof(ledger.storage, old_size, stored.size))
    checkpoint = parse_checkpoint_body(parse_note(stored.note).text_body)
    return Submission(witness.id, witness.name, witness.url, witness.verifier_key, old_size,
                      proof, stored.note, checkpoint)


def pending(session: Session) -> tuple[list[Submission], list[tuple[str, str]]]:
    """Submissions of the latest checkpoint to every witness behind it, and the failures.

    A failure is a witness whose last cosigned size is not a size this ledger
    signed (so no consistency proof can start there): ``(name, reason)``.
    """
    submissions: list[Submission] = []
    failures: list[tuple[str, str]] = []
    witnesses = repo.active(session)
    if not witnesses:  # every second in each process: one query when there is no witness
        return submissions, failures
    latest = ledger_for(session).storage.latest_checkpoint()
    for witness in witnesses:
        if latest is None or witness.last_size >= latest.size:
            continue
        try:
            submission = _submission(session, witness, witness.last_size)
        except ProofError as exc:
            failures.append((witness.name, str(exc)))
            continue
        if submission is not None:
            submissions.append(submission)
    return submissions, failures


def note_witness_size(session: Session, witness_id: int, size: int) -> None:
    """Record the size a witness says it last cosigned (its 409 answer)."""
    repo.set_last_size(session, witness_id, size)


def resubmission(session: Session, witness_id: int, size: int) -> Submission | None:
    """The request to make after a 409 that named ``size``.

    From the latest size itself the request is planned too (empty proof): the
    witness cosigns again if it holds the same root, and answers 409 on a fork.
    ``None`` when ``size`` is beyond the latest checkpoint; a
    :class:`~ledger.errors.ProofError` when it is not a size this ledger signed.
    """
    witness = repo.get(session, witness_id)
    if witness is None or witness.removed_at is not None:
        return None
    return _submission(session, witness, size)


def keep_cosignature(session: Session, witness_id: int, size: int, line: str,
                     *, timestamp: int) -> None:
    """Store a verified cosignature and merge every one of ``size`` into its note."""
    storage = ledger_for(session).storage
    storage.lock_head()  # one writer at a time rewrites a note, so no line is lost
    stored = ledger_for(session).signed_checkpoint(size)
    if stored is None:
        raise NotFound(f"no checkpoint of size {size}")
    if repo.cosignature(session, witness_id, size) is None:
        session.add(WitnessCosignature(witness_id=witness_id, checkpoint_size=size, line=line,
                                       timestamp=timestamp, received_at=now()))
        session.flush()
    repo.raise_last_size(session, witness_id, size)
    note = add_signature_lines(stored.note, repo.cosignature_lines(session, size))
    if note != stored.note:
        storage.update_checkpoint_note(size, note)
