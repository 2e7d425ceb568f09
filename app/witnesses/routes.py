"""``/v1/witnesses``: coordinators register, list and remove witnesses."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from app.auth.dependencies import CoordinatorDep, require_role
from app.auth.service import Principal
from app.ledger import SessionDep, UnitOfWorkRoute
from app.models.identity import Role
from app.witnesses import service
from app.witnesses.schemas import WitnessCreate, WitnessRead

router = APIRouter(prefix="/v1/witnesses", tags=["witnesses"], route_class=UnitOfWorkRoute)
ReaderDep = Annotated[Principal, Depends(require_role(Role.COORDINATOR, Role.AUDITOR))]


@router.post("", status_code=201, name="witness.register")
def register_witness(body: WitnessCreate, session: SessionDep,
                     by: CoordinatorDep) -> WitnessRead:
    """Register a witness the ledger's checkpoints are submitted to (coordinators)."""
    witness = service.register(session, by, body.name, body.url, verifier_key=body.verifier_key)
    return WitnessRead.model_validate(witness)


@router.get("", name="witness.list")
def list_witnesses(session: SessionDep, by: ReaderDep) -> list[WitnessRead]:
    """The active witnesses (coordinators and auditors)."""
    return [WitnessRead.model_validate(w) for w in service.listing(session, by)]


@router.delete("/{name}", status_code=204, name="witness.remove")
def remove_witness(name: str, session: SessionDep, by: CoordinatorDep) -> Response:
    """Stop submitting checkpoints to a witness (coordinators)."""
    service.remove(session, by, name)
    return Response(status_code=204)
