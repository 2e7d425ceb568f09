"""``/v1/states``: enrolment and status of participating states."""

from __future__ import annotations

from fastapi import APIRouter

from app.auth.dependencies import CoordinatorDep, PrincipalDep
from app.ledger import SessionDep, UnitOfWorkRoute
from app.states import service
from app.states.schemas import StateCreate, StateRead, StateUpdate

router = APIRouter(prefix="/v1/states", tags=["states"], route_class=UnitOfWorkRoute)


@router.post("", status_code=201, name="state.enrol")
def enrol_state(body: StateCreate, session: SessionDep, by: CoordinatorDep) -> StateRead:
    """Enrol a participating state (coordinators)."""
    state = service.enrol(session, by, body.code, body.name, note=body.joining_note)
    return StateRead.model_validate(state)


@router.get("", name="state.list")
def list_states(session: SessionDep, by: PrincipalDep) -> list[StateRead]:
    """Every participating state (any liaison)."""
    return [StateRead.model_validate(s) for s in service.listing(session, by)]


@router.patch("/{code}", name="state.status")
def update_state(code: str, body: StateUpdate, session: SessionDep,
                 by: CoordinatorDep) -> StateRead:
    """Suspend, reactivate or withdraw a state (coordinators)."""
    state = service.set_status(session, by, code, body.status, reason=body.reason)
    return StateRead.model_validate(state)
