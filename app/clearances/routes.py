"""``/v1/clearances``: grant, renew, revoke, list."""

from __future__ import annotations

from fastapi import APIRouter

from app.auth.dependencies import CoordinatorDep, PrincipalDep
from app.clearances import service
from app.clearances.schemas import (
    ClearanceCreate,
    ClearanceRead,
    ClearanceRenew,
    ClearanceRevoke,
    level_name,
)
from app.ledger import AccessDenied, Reason, SessionDep, UnitOfWorkRoute, deny, now
from app.models.identity import Clearance, Level, Role

router = APIRouter(prefix="/v1/clearances", tags=["clearances"], route_class=UnitOfWorkRoute)


def clearance_read(clearance: Clearance) -> ClearanceRead:
    """The API form of a clearance."""
    return ClearanceRead(
        id=clearance.id, liaison_id=clearance.liaison_id, level=level_name(clearance.level),
        valid_from=clearance.valid_from, valid_until=clearance.valid_until,
        granted_by=clearance.granted_by, granted_at=clearance.granted_at,
        revoked_at=clearance.revoked_at, in_force=clearance.valid_at(now()),
    )


@router.post("", status_code=201, name="clearance.grant")
def grant_clearance(body: ClearanceCreate, session: SessionDep,
                    by: CoordinatorDep) -> ClearanceRead:
    """Grant a clearance (coordinators)."""
    clearance = service.grant(session, by, body.liaison_id, Level[body.level],
                              valid_from=body.valid_from, valid_until=body.valid_until)
    return clearance_read(clearance)


@router.post("/{clearance_id}/renew", name="clearance.renew")
def renew_clearance(clearance_id: str, body: ClearanceRenew, session: SessionDep,
                    by: CoordinatorDep) -> ClearanceRead:
    """Renew a clearance to a new end of validity (coordinators)."""
    return clearance_read(service.renew(session, by, clearance_id, body.valid_until))


@router.post("/{clearance_id}/revoke", name="clearance.revoke")
def revoke_clearance(clearance_id: str, body: ClearanceRevoke, session: SessionDep,
                     by: CoordinatorDep) -> ClearanceRead:
    """Revoke a clearance at once (coordinators)."""
    return clearance_read(service.revoke(session, by, clearance_id, body.reason))


@router.get("", name="clearance.list")
def list_clearances(session: SessionDep, by: PrincipalDep,
                    liaison_id: str | None = None) -> list[ClearanceRead]:
    """Clearances of a liaison: your own, or anyone's for coordinators."""
    target = liaison_id or by.liaison_id
    if target != by.liaison_id and by.role != Role.COORDINATOR:
        raise deny(AccessDenied, "only coordinators see other liaisons' clearances",
                   by.actor, "clearance.list", {"type": "liaison", "id": target},
                   Reason.WRONG_ROLE)
    return [clearance_read(c) for c in service.listing(session, by, target)]
