"""``/v1/ledger``: the endpoints DESIGN.md fixes."""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import PlainTextResponse

from app.auth.dependencies import PrincipalDep
from app.deps import SessionDep
from app.errors import Unavailable
from app.ledger_api import service
from app.ledger_api.schemas import (
    ConsistencyRead,
    EntriesRead,
    EntryItem,
    InclusionRead,
    RefusalDetailRead,
)
from ledger.refusal import detail_digest

router = APIRouter(prefix="/v1/ledger", tags=["ledger"])
MAX_INDEX = 2**62
TEXT: dict[int | str, dict[str, Any]] = {200: {"content": {"text/plain": {}}}}


@router.get("/checkpoint", response_class=PlainTextResponse, responses=TEXT,
            name="ledger.checkpoint")
def get_checkpoint(session: SessionDep) -> PlainTextResponse:
    """The latest signed checkpoint (C2SP signed note, with every cosignature)."""
    checkpoint = service.latest_checkpoint(session)
    if checkpoint is None:
        raise Unavailable("no checkpoint has been signed yet")
    return PlainTextResponse(checkpoint.note)


@router.get("/key", response_class=PlainTextResponse, responses=TEXT, name="ledger.key")
def get_key(request: Request) -> PlainTextResponse:
    """The ledger's note verifier key (``<origin>+<hex key id>+<base64 key>``)."""
    verifier: str | None = request.app.state.ledger_verifier_key
    if verifier is None:
        raise Unavailable("the server has no ledger key yet (run cadena-server bootstrap)")
    return PlainTextResponse(verifier + "\n")


@router.get("/entries", name="ledger.entries")
def get_entries(session: SessionDep, by: PrincipalDep,
                start: Annotated[int, Query(ge=0, le=MAX_INDEX)] = 0,
                limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = 100) -> EntriesRead:
    """Entries from ``start`` as stored (auditors)."""
    page = service.entries(session, by, start, limit)
    return EntriesRead(entries=[EntryItem(index=i, entry=base64.b64encode(raw).decode())
                                for i, raw in page])


@router.get("/proofs/inclusion", name="ledger.inclusion")
def get_inclusion(session: SessionDep, by: PrincipalDep,
                  index: Annotated[int, Query(ge=0, le=MAX_INDEX)],
                  size: Annotated[int, Query(ge=1, le=MAX_INDEX)]) -> InclusionRead:
    """RFC 9162 inclusion proof of ``index`` in a signed tree of ``size`` (auditors)."""
    proof = service.inclusion(session, by, index, size)
    return InclusionRead(index=index, tree_size=size, proof=[h.hex() for h in proof])


@router.get("/proofs/consistency", name="ledger.consistency")
def get_consistency(session: SessionDep, by: PrincipalDep,
                    from_: Annotated[int, Query(alias="from", ge=1, le=MAX_INDEX)],
                    to: Annotated[int, Query(ge=1, le=MAX_INDEX)]) -> ConsistencyRead:
    """RFC 9162 consistency proof between two signed sizes (auditors)."""
    proof = service.consistency(session, by, from_, to)
    return ConsistencyRead.model_validate(
        {"from": from_, "to": to, "proof": [h.hex() for h in proof]})


@router.get("/refusals/{index}", name="ledger.refusal_detail")
def get_refusal_detail(session: SessionDep, by: PrincipalDep,
                       index: Annotated[int, Path(ge=0, le=MAX_INDEX)]) -> RefusalDetailRead:
    """The private detail of refusal entry ``index``, bound by its salted digest (auditors)."""
    found = service.refusal_detail(session, by, index)
    return RefusalDetailRead(index=index, detail=found.detail, salt=found.salt.hex(),
                             digest=detail_digest(found.salt, found.detail))
