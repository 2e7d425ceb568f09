"""``/v1/directory``: the ledger entries behind every liaison's keys, with proofs."""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, Path, Query

from app.auth.dependencies import PrincipalDep
from app.auth.schemas import ID_PATTERN
from app.directory import service
from app.directory.schemas import DirectoryEntryRead, DirectoryRead
from app.ledger import SessionDep, UnitOfWorkRoute
from app.ledger_api.routes import MAX_INDEX
from app.liaisons.routes import key_read

router = APIRouter(prefix="/v1/directory", tags=["directory"], route_class=UnitOfWorkRoute)


@router.get("/{liaison_id}", name="directory.read")
def read_directory(
    liaison_id: Annotated[str, Path(pattern=ID_PATTERN, max_length=128)],
    session: SessionDep, by: PrincipalDep,
    start: Annotated[int, Query(ge=0, le=MAX_INDEX)] = 0,
    *, since: Annotated[int | None, Query(ge=1, le=MAX_INDEX)] = None,
    witnessed: Annotated[int, Query(ge=0, le=32)] = 0,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = service.MAX_PAGE,
) -> DirectoryRead:
    """A liaison's key entries from ``start``, each with its inclusion proof (any liaison).

    All are proven in one signed checkpoint, served with its cosignatures: the
    newest with ``witnessed`` cosignatures (else the latest); ``since`` asks
    for a consistency proof from that size.
    """
    found = service.view(session, by, liaison_id, start=start, since=since,
                         witnessed=witnessed, limit=limit)
    return DirectoryRead(
        liaison_id=found.liaison_id, checkpoint=found.note, tree_size=found.size,
        since=found.since,
        consistency=None if found.consistency is None else [h.hex() for h in found.consistency],
        entries=[DirectoryEntryRead(index=e.index, entry=base64.b64encode(e.entry).decode(),
                                    proof=[h.hex() for h in e.proof],
                                    key=key_read(e.key) if e.key else None)
                 for e in found.entries])
