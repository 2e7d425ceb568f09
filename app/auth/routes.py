"""``/v1/auth``: challenge and token."""

from __future__ import annotations

import base64

from fastapi import APIRouter, Request

from app.admission import Admission
from app.auth import service
from app.auth.schemas import ChallengeCreate, ChallengeRead, LedgerRef, TokenCreate, TokenRead
from app.deps import SettingsDep
from app.ledger import SessionDep, UnitOfWorkRoute, record_refusal_entry
from app.ratelimit import RateLimitsDep, client_address
from crypto import AUTH_CHALLENGE_TYPE

router = APIRouter(prefix="/v1/auth", tags=["authentication"], route_class=UnitOfWorkRoute)


@router.post("/challenge", status_code=201, name="auth.challenge")
def create_challenge(body: ChallengeCreate, request: Request, session: SessionDep,
                     settings: SettingsDep, *, limits: RateLimitsDep) -> ChallengeRead:
    """Start a login: a one-time challenge to sign with the liaison's Ed25519 key."""
    address = client_address(request)
    # The per-liaison bucket is per address too: nobody else's flood of
    # challenges can lock a liaison out of logging in.
    limits.check(limits.login, [f"challenge:addr:{address}",
                                f"challenge:liaison:{body.liaison_id}:addr:{address}"],
                 None, "auth.challenge", subject={"type": "liaison", "id": body.liaison_id})
    issued = service.issue_challenge(session, body.liaison_id, settings.ledger_origin,
                                     settings.challenge_ttl_seconds)
    if issued.refusal is not None:  # an unknown liaison: a decoy, the refusal logged
        record_refusal_entry(session, issued.refusal)
    return ChallengeRead(
        challenge_id=issued.challenge_id,
        payload=base64.b64encode(issued.payload).decode(),
        payload_type=AUTH_CHALLENGE_TYPE,
        expires_at=issued.expires_at,
    )


@router.post("/token", status_code=201, name="auth.login")
def create_token(body: TokenCreate, request: Request, session: SessionDep,
                 settings: SettingsDep, *, limits: RateLimitsDep) -> TokenRead:
    """Finish a login: the signed challenge buys a short-lived bearer token."""
    limits.check(limits.login, [f"token:addr:{client_address(request)}"], None, "auth.login",
                 subject={"type": "challenge", "id": body.challenge_id})
    issued = service.issue_token(
        session, body.challenge_id, body.key_id, base64.b64decode(body.signature),
        origin=settings.ledger_origin, ttl=settings.token_ttl_seconds,
    )
    admission: Admission | None = getattr(request.app.state, "admission", None)
    if admission is not None:  # its requests are bounded per liaison from the first one
        admission.remember(issued.token, issued.liaison_id, issued.expires_at)
    return TokenRead(
        token=issued.token,
        expires_at=issued.expires_at,
        clearance_expires_at=issued.clearance_expires_at,
        ledger=LedgerRef(index=issued.entry.index, leaf_hash=issued.entry.leaf_hash.hex()),
    )
