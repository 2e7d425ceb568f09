"""Rules for clearances: granted, renewed and revoked by coordinators."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from app.auth.service import Principal
from app.errors import NotFound, RuleRefused
from app.identity import repository as repo
from app.ledger import draft, now, record
from app.models.identity import Clearance, Level


class ClearanceRevoked(RuleRefused):
    """A revoked clearance cannot be renewed; grant a new one."""

    status, code, title = 409, "clearance-revoked", "Clearance revoked"


def grant(session: Session, by: Principal | None, liaison_id: str, level: Level,
          *, valid_from: datetime, valid_until: datetime) -> Clearance:
    """Grant a clearance; ``by`` is None only for the bootstrap."""
    if repo.get_liaison(session, liaison_id) is None:
        raise NotFound(f"no liaison {liaison_id}")
    clearance = Clearance(
        id=secrets.token_hex(8), liaison_id=liaison_id, level=int(level),
        valid_from=valid_from, valid_until=valid_until,
        granted_by=by.liaison_id if by else liaison_id, granted_at=now(),
    )
    session.add(clearance)
    record(session, draft(by.actor if by else None, "clearance.grant",
                          {"type": "liaison", "id": liaison_id},
                          details={"clearance": clearance.id, "level": level.name,
                                   "valid_from": valid_from.isoformat(),
                                   "valid_until": valid_until.isoformat()}))
    return clearance


def _get(session: Session, clearance_id: str) -> Clearance:
    clearance = session.get(Clearance, clearance_id)
    if clearance is None:
        raise NotFound(f"no clearance {clearance_id}")
    return clearance


def renew(session: Session, by: Principal, clearance_id: str, valid_until: datetime) -> Clearance:
    """Set a new end of validity for a clearance that was not revoked."""
    clearance = _get(session, clearance_id)
    if clearance.revoked_at is not None:
        raise ClearanceRevoked(f"clearance {clearance_id} was revoked")
    clearance.valid_until = valid_until
    record(session, draft(by.actor, "clearance.renew",
                          {"type": "liaison", "id": clearance.liaison_id},
                          details={"clearance": clearance.id,
                                   "valid_until": valid_until.isoformat()}))
    return clearance


def revoke(session: Session, by: Principal, clearance_id: str, reason: str) -> Clearance:
    """Revoke a clearance at once."""
    clearance = _get(session, clearance_id)
    if clearance.revoked_at is None:
        clearance.revoked_at = now()
    record(session, draft(by.actor, "clearance.revoke",
                          {"type": "liaison", "id": clearance.liaison_id},
                          details={"clearance": clearance.id, "reason": reason}))
    return clearance


def listing(session: Session, by: Principal, liaison_id: str) -> Sequence[Clearance]:
    """A liaison's clearances (their own, or anyone's for a coordinator); logged."""
    record(session, draft(by.actor, "clearance.list", {"type": "liaison", "id": liaison_id}))
    return repo.clearances_of(session, liaison_id)
