"""``/v1/ledger``: the endpoints DESIGN.md fixes."""

from __future__ import annotations

import base64
import time
from typing import Annotated, Any

import anyio
import anyio.to_thread
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import PlainTextResponse
from sqlalchemy.orm import sessionmaker

from app.admission import Admission
from app.auth.dependencies import PrincipalDep
from app.errors import Unavailable
from app.ledger import SessionDep, UnitOfWork, UnitOfWorkRoute, transaction
from app.ledger_api import service
from app.ledger_api.schemas import (
    CheckpointItem,
    CheckpointsRead,
    ConsistencyRead,
    EntriesRead,
    EntryItem,
    InclusionRead,
    RefusalDetailRead,
)
from ledger import detail_digest

router = APIRouter(prefix="/v1/ledger", tags=["ledger"], route_class=UnitOfWorkRoute)
MAX_INDEX = 2**62
TEXT: dict[int | str, dict[str, Any]] = {200: {"content": {"text/plain": {}}}}


def read_public_checkpoint(state: Any) -> str:
    """Read the latest signed note and keep it in ``state`` (the application's) for bursts."""
    sessions: sessionmaker[UnitOfWork] = state.sessions
    with transaction(sessions) as session:
        checkpoint = service.latest_checkpoint(session)
    if checkpoint is None:
        raise Unavailable("no checkpoint has been signed yet")
    state.public_checkpoint = (checkpoint.note, time.monotonic())
    return checkpoint.note


@router.get("/checkpoint", response_class=PlainTextResponse, responses=TEXT,
            name="ledger.checkpoint")
async def get_checkpoint(request: Request) -> PlainTextResponse:
    """The latest signed checkpoint (C2SP signed note, with every cosignature).

    Public, and answered during any burst: while requests queue for threads
    (``app.admission``), the last note this process read is served from
    memory (a signed checkpoint stays true; it may be one interval old).
    """
    admission: Admission | None = getattr(request.app.state, "admission", None)
    cached: tuple[str, float] | None = getattr(request.app.state, "public_checkpoint", None)
    if cached is not None and admission is not None and admission.busy:
        return PlainTextResponse(cached[0])
    limiter = anyio.CapacityLimiter(1)  # not the request threads' pool: they may all be busy
    note = await anyio.to_thread.run_sync(read_public_checkpoint, request.app.state,
                                          limiter=limiter)
    return PlainTextResponse(note)


@router.get("/key", response_class=PlainTextResponse, responses=TEXT, name="ledger.key")
async def get_key(request: Request) -> PlainTextResponse:
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


@router.get("/checkpoints", name="ledger.checkpoints")
def get_checkpoints(session: SessionDep, by: PrincipalDep,
                    after: Annotated[int, Query(ge=0, le=MAX_INDEX)] = 0,
                    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = 100,
                    ) -> CheckpointsRead:
    """Signed checkpoints of size above ``after``, oldest first: the sizes proofs answer for."""
    page, following = service.checkpoints(session, by, after, limit)
    return CheckpointsRead(checkpoints=[CheckpointItem(size=cp.size, root=cp.root.hex(),
                                                       time=cp.time, note=cp.note)
                                        for cp in page], next=following)


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
