"""Rules for reading the ledger: who may read what; every read is logged."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from app.auth.service import Principal
from app.errors import CadenaError, NotFound
from app.ledger import (
    AccessDenied,
    Reason,
    SignedCheckpoint,
    checkpoints_after,
    deny,
    draft,
    ledger_for,
    record,
)
from app.models.identity import Role
from app.models.refusal import RefusalDetail
from ledger import ProofError, StoredCheckpoint

MAX_PAGE = 1000


class NoCheckpoint(CadenaError):
    """The ledger has no signed checkpoint covering that size yet."""

    status, code, title = 404, "no-checkpoint", "No signed checkpoint for that size"


class OutOfRange(CadenaError):
    """An index or size outside the ledger."""

    status, code, title = 400, "out-of-range", "Out of range"


def latest_checkpoint(session: Session) -> StoredCheckpoint | None:
    """The newest signed checkpoint (public: it reveals no content)."""
    return ledger_for(session).storage.latest_checkpoint()


def _auditor_only(by: Principal, action: str, subject: dict[str, str]) -> None:
    if by.role != Role.AUDITOR:
        raise deny(AccessDenied, "ledger reads need the auditor role", by.actor, action,
                   subject, Reason.WRONG_ROLE)


def entries(session: Session, by: Principal, start: int, limit: int) -> list[tuple[int, bytes]]:
    """A page of raw entries from ``start`` (auditors); the read is logged."""
    subject = {"type": "ledger", "id": f"{start}+{limit}"}
    _auditor_only(by, "ledger.entries", subject)
    storage = ledger_for(session).storage
    size = storage.size()
    stop = min(size, start + min(limit, MAX_PAGE))
    page = list(enumerate(storage.entries(start, stop), start)) if start < stop else []
    record(session, draft(by.actor, "ledger.entries", subject, details={"returned": len(page)}))
    return page


def checkpoints(session: Session, by: Principal, after: int,
                limit: int) -> tuple[list[SignedCheckpoint], int | None]:
    """A page of signed checkpoints above size ``after``, oldest first (auditors); logged.

    Returns the page and the ``after`` of the next one (``None`` on the last
    page): outside tools learn from it which sizes have proofs.
    """
    action = "ledger.checkpoints"
    subject = {"type": "ledger", "id": f"checkpoints:{after}+{limit}"}
    _auditor_only(by, action, subject)
    limit = min(limit, MAX_PAGE)
    page = checkpoints_after(session, after, limit + 1)  # one more: is there a next?
    more = len(page) > limit
    page = page[:limit]
    record(session, draft(by.actor, action, subject, details={"returned": len(page)}))
    return page, page[-1].size if more else None


def _signed_sizes(session: Session, sizes: Sequence[int]) -> None:
    storage = ledger_for(session).storage
    latest = storage.latest_checkpoint()
    for size in sizes:
        if latest is None or size > latest.size:
            raise NoCheckpoint(f"no signed checkpoint covers size {size} yet")


def inclusion(session: Session, by: Principal, index: int, size: int) -> list[bytes]:
    """An inclusion proof for a size a checkpoint signed (auditors); logged."""
    subject = {"type": "ledger", "id": f"inclusion:{index}@{size}"}
    _auditor_only(by, "ledger.inclusion", subject)
    if not 0 <= index < size:
        raise OutOfRange(f"index {index} is not in a tree of size {size}")
    _signed_sizes(session, [size])
    try:
        proof = ledger_for(session).inclusion_proof(index, size)
    except ProofError as exc:
        raise NoCheckpoint(str(exc)) from exc
    record(session, draft(by.actor, "ledger.inclusion", subject))
    return proof


def consistency(session: Session, by: Principal, old: int, new: int) -> list[bytes]:
    """A consistency proof between two signed sizes (auditors); logged."""
    subject = {"type": "ledger", "id": f"consistency:{old}-{new}"}
    _auditor_only(by, "ledger.consistency", subject)
    if not 0 < old <= new:
        raise OutOfRange("consistency needs 0 < from <= to (from 0 is meaningless)")
    _signed_sizes(session, [old, new])
    try:
        proof = ledger_for(session).consistency_proof(old, new)
    except ProofError as exc:
        raise NoCheckpoint(str(exc)) from exc
    record(session, draft(by.actor, "ledger.consistency", subject))
    return proof


def refusal_detail(session: Session, by: Principal, index: int) -> RefusalDetail:
    """The auditor-only detail of the refusal entry at ``index``; the read is logged.

    The answer is checked by the auditor against the digest in the entry
    (``client.audit.fetch_refusal_detail``), not trusted.
    """
    action = "ledger.refusal_detail"
    subject = {"type": "ledger", "id": f"refusal:{index}"}
    _auditor_only(by, action, subject)
    found = session.get(RefusalDetail, index)
    if found is None:
        raise NotFound(f"entry {index} has no refusal detail")
    record(session, draft(by.actor, action, subject))
    return found
