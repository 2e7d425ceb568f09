"""The authenticated caller as a dependency, and role checks.

The dependencies here read nothing: they run on the event loop and hand the
route a :class:`Credentials`, which :class:`app.ledger.route.UnitOfWorkRoute`
resolves into a :class:`Principal` in the request's own thread, on its own
session (``app.ledger.route.Deferred``). So authentication takes the request's one
connection in the thread that goes on to use it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Protocol, TypeVar

import structlog
from fastapi import Depends, Request
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session

from app.auth.service import Principal, authenticate
from app.identity.repository import TokenFacts
from app.ledger import AccessDenied, Reason, as_unit_of_work, deny
from app.models.identity import Role

if TYPE_CHECKING:
    from app.admission import Admission


def action_of(request: Request) -> str:
    """The ledger action name of the route being served (its ``name``)."""
    route = request.scope.get("route")
    return route.name if isinstance(route, APIRoute) else "unknown"


def bearer_of(request: Request) -> str | None:
    """The token of the ``Authorization: Bearer`` header, if any."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


class _WithToken(Protocol):
    @property
    def token(self) -> TokenFacts: ...


_Folded = TypeVar("_Folded", bound=_WithToken)


@dataclass(frozen=True)
class Credentials:
    """What the request presented, checked in its thread (an ``app.ledger.route.Deferred``)."""

    bearer: str | None
    action: str
    roles: tuple[Role, ...] = ()
    admission: Admission | None = None

    def resolve(self, session: Session) -> Principal:
        """The principal behind the token, or a logged 401 (403 for a role not allowed)."""
        return self.accept(session, authenticate(session, self.bearer, self.action))

    def resolve_with(self, session: Session,
                     read: Callable[[str, datetime], _Folded | None]) -> tuple[Principal, _Folded]:
        """:meth:`resolve`, the token read by ``read`` with whatever else its query reads for
        the token's liaison (ADR 0027, 0031): the caller, and that read.

        Every check of the token is made first, on what ``read`` returned; what
        else it read is handed back only with a principal that passed them.
        """
        found: list[_Folded] = []

        def token(token_id: str, moment: datetime) -> TokenFacts | None:
            got = read(token_id, moment)
            if got is None:
                return None
            found.append(got)
            return got.token

        principal = authenticate(session, self.bearer, self.action, token)
        return self.accept(session, principal), found[0]

    def accept(self, session: Session, principal: Principal) -> Principal:
        """``principal``, authenticated from this bearer, as the request's caller (or a
        logged 403 for a role not allowed); for deferred dependencies that read the
        token with a query of their own (``app.packets.access.RetrievalCredentials``)."""
        as_unit_of_work(session).caller = (principal.actor, self.action)  # for refusals by rules
        structlog.contextvars.bind_contextvars(actor=principal.liaison_id)
        if self.admission is not None and self.bearer and principal.expires_at is not None:
            self.admission.remember(self.bearer, principal.liaison_id, principal.expires_at)
        if self.roles and principal.role not in self.roles:
            raise deny(AccessDenied, f"this needs the role {' or '.join(self.roles)}",
                       principal.actor, self.action,
                       {"type": "liaison", "id": principal.liaison_id},
                       Reason.WRONG_ROLE)
        return principal


async def current_principal(request: Request) -> Credentials:
    """The caller's credentials, checked in the route's thread (module docstring)."""
    admission: Admission | None = getattr(request.app.state, "admission", None)
    return Credentials(bearer_of(request), action_of(request), admission=admission)


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def require_role(*roles: Role) -> Callable[[Credentials], Awaitable[Credentials]]:
    """A dependency that lets only ``roles`` through (others get a logged 403)."""

    async def check(credentials: Annotated[Credentials, Depends(current_principal)]
                    ) -> Credentials:
        return Credentials(credentials.bearer, credentials.action, roles,
                           credentials.admission)

    return check


CoordinatorDep = Annotated[Principal, Depends(require_role(Role.COORDINATOR))]
AuditorDep = Annotated[Principal, Depends(require_role(Role.AUDITOR))]

