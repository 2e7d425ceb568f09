"""The authenticated caller as a dependency, and role checks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

import structlog
from fastapi import Depends, Request
from fastapi.routing import APIRoute

from app.audit import AccessDenied, deny
from app.auth.service import Principal, authenticate
from app.deps import SessionDep
from app.models.identity import Role


def action_of(request: Request) -> str:
    """The ledger action name of the route being served (its ``name``)."""
    route = request.scope.get("route")
    return route.name if isinstance(route, APIRoute) else "unknown"


def current_principal(request: Request, session: SessionDep) -> Principal:
    """The caller behind the ``Authorization: Bearer`` header, or a logged 401."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    bearer = value.strip() if scheme.lower() == "bearer" else None
    principal = authenticate(session, bearer, action_of(request))
    structlog.contextvars.bind_contextvars(actor=principal.liaison_id)
    return principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def require_role(*roles: Role) -> Callable[[Request, Principal], Awaitable[Principal]]:
    """A dependency that lets only ``roles`` through (others get a logged 403).

    ``async``: it reads nothing, so it runs on the event loop, not in a thread;
    the refusal is recorded by the session dependency.
    """

    async def check(request: Request, principal: PrincipalDep) -> Principal:
        if principal.role not in roles:
            raise deny(AccessDenied, f"this needs the role {' or '.join(roles)}",
                       principal.actor, action_of(request),
                       {"type": "liaison", "id": principal.liaison_id},
                       f"role {principal.role} not allowed")
        return principal

    return check


CoordinatorDep = Annotated[Principal, Depends(require_role(Role.COORDINATOR))]
AuditorDep = Annotated[Principal, Depends(require_role(Role.AUDITOR))]
