"""Rules for states: coordinators enrol them and change their status."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from app.auth.service import Principal
from app.errors import NotFound, RuleRefused
from app.identity import repository as repo
from app.ledger import AccessDenied, Reason, deny, draft, now, record
from app.models.identity import State, StateStatus


class StateExists(RuleRefused):
    """A state with that code is already enrolled."""

    status, code, title = 409, "state-exists", "State already enrolled"


class WithdrawnIsFinal(RuleRefused):
    """A withdrawn state cannot be reactivated; it must join again under a new note."""

    status, code, title = 409, "state-withdrawn", "State withdrawn"


class LastCoordinator(AccessDenied):
    """The change would leave no active coordinator, and no one to undo it (refusal logged)."""

    status, code, title = 409, "last-coordinator", "Last active coordinator"


def enrol(session: Session, by: Principal, code: str, name: str, *, note: str) -> State:
    """Enrol a state; logged."""
    if repo.get_state(session, code) is not None:
        raise StateExists(f"state {code} is already enrolled",
                          subject={"type": "state", "id": code})
    moment = now()
    state = State(code=code, name=name, status=StateStatus.ACTIVE, joining_note=note,
                  created_at=moment, updated_at=moment)
    session.add(state)
    record(session, draft(by.actor, "state.enrol", {"type": "state", "id": code},
                          details={"joining_note": note}))
    return state


def set_status(session: Session, by: Principal, code: str, status: StateStatus,
               *, reason: str) -> State:
    """Suspend, reactivate or withdraw a state; logged."""
    state = repo.get_state(session, code)
    if state is None:
        raise NotFound(f"no state {code}", subject={"type": "state", "id": code})
    if state.status == StateStatus.WITHDRAWN:
        raise WithdrawnIsFinal(f"state {code} has withdrawn", subject={"type": "state", "id": code})
    if status != StateStatus.ACTIVE:
        _keep_a_coordinator(session, by, code)
    state.status = status
    state.updated_at = now()
    record(session, draft(by.actor, "state.status", {"type": "state", "id": code},
                          details={"status": status.value, "reason": reason}))
    return state


def _keep_a_coordinator(session: Session, by: Principal, code: str) -> None:
    # Only coordinators reactivate states or enrol new coordinators: with none
    # left, only an edit of the database could bring the centre back.
    if not repo.states_with_active_coordinators(session) - {code}:
        # A code in the style of the refusal vocabulary: it names the rule, no one's facts.
        raise deny(LastCoordinator, f"no active coordinator would remain: state {code} "
                   "holds the last one", by.actor, "state.status",
                   {"type": "state", "id": code}, Reason.LAST_COORDINATOR)


def listing(session: Session, by: Principal) -> Sequence[State]:
    """Every state; the listing is logged."""
    record(session, draft(by.actor, "state.list", {"type": "states", "id": "*"}))
    return repo.list_states(session)
