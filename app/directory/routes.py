"""``/v1/directory``: the ledger entries behind every liaison's keys, with proofs."""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, Path, Query

from app.auth.dependencies import PrincipalDep
from app.auth.schemas import ID_PATTERN
from app.directory import service
from app.directory.schemas import (
    DirectoryEntryRead,
    DirectoryRead,
    KeyConsistencyRead,
    KeyInclusionRead,
    KeyLeavesRead,
)
from app.ledger import SessionDep, UnitOfWorkRoute
from app.ledger_api.routes import MAX_INDEX
from app.liaisons.routes import key_read

router = APIRouter(prefix="/v1/directory", tags=["directory"], route_class=UnitOfWorkRoute)


@router.get("/key-log/leaves", name="directory.key_log_leaves")
def read_key_leaves(session: SessionDep, by: PrincipalDep,
                    start: Annotated[int, Query(ge=0, le=MAX_INDEX)] = 0,
                    limit: Annotated[int, Query(ge=1, le=service.MAX_LEAVES)] = service.MAX_LEAVES,
                    ) -> KeyLeavesRead:
    """Key-log leaves from ``start``, every one a signed checkpoint carries (any liaison)."""
    leaves = service.key_leaves(session, by, start, limit)
    return KeyLeavesRead(start=start, leaves=[base64.b64encode(leaf.encode()).decode()
                                              for leaf in leaves])


@router.get("/key-log/proofs/inclusion", name="directory.key_log_inclusion")
def read_key_inclusion(session: SessionDep, by: PrincipalDep,
                       index: Annotated[int, Query(ge=0, le=MAX_INDEX)],
                       size: Annotated[int, Query(ge=1, le=MAX_INDEX)]) -> KeyInclusionRead:
    """RFC 9162 inclusion proof of key-log leaf ``index`` in a signed key log of ``size``."""
    proof = service.key_inclusion(session, by, index, size)
    return KeyInclusionRead(index=index, tree_size=size, proof=[h.hex() for h in proof])


@router.get("/key-log/proofs/consistency", name="directory.key_log_consistency")
def read_key_consistency(session: SessionDep, by: PrincipalDep,
                         from_: Annotated[int, Query(alias="from", ge=1, le=MAX_INDEX)],
                         to: Annotated[int, Query(ge=1, le=MAX_INDEX)]) -> KeyConsistencyRead:
    """RFC 9162 consistency proof between two key-log sizes signed checkpoints carry."""
    proof = service.key_consistency(session, by, from_, to)
    return KeyConsistencyRead.model_validate(
        {"from": from_, "to": to, "proof": [h.hex() for h in proof]})


@router.get("/{liaison_id}", name="directory.read")
def read_directory(
    liaison_id: Annotated[str, Path(pattern=ID_PATTERN, max_length=128)],
    session: SessionDep, by: PrincipalDep,
    start: Annotated[int, Query(ge=0, le=MAX_INDEX)] = 0,
    *, since: Annotated[int | None, Query(ge=1, le=MAX_INDEX)] = None,
    witnessed: Annotated[int, Query(ge=0, le=32)] = 0,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = service.MAX_PAGE,
    key_since: Annotated[int | None, Query(ge=1, le=MAX_INDEX)] = None,
) -> DirectoryRead:
    """A liaison's key entries from ``start``, each with its inclusion proof (any liaison).

    All are proven in one signed checkpoint, served with its cosignatures: the
    newest with ``witnessed`` cosignatures (else the latest); ``since`` asks
    for a consistency proof from that size, ``key_since`` for one of the key
    log from that key-log size. Each entry comes with its key-log leaf's
    index and inclusion proof in the key log the checkpoint carries.
    """
    found = service.view(session, by, liaison_id, start=start, since=since,
                         witnessed=witnessed, limit=limit, key_since=key_since)
    return DirectoryRead(
        liaison_id=found.liaison_id, checkpoint=found.note, tree_size=found.size,
        since=found.since,
        consistency=None if found.consistency is None else [h.hex() for h in found.consistency],
        key_since=key_since,
        key_consistency=None if found.key_consistency is None else
        [h.hex() for h in found.key_consistency],
        entries=[DirectoryEntryRead(index=e.index, entry=base64.b64encode(e.entry).decode(),
                                    proof=[h.hex() for h in e.proof],
                                    key=key_read(e.key) if e.key else None,
                                    key_log_index=e.key_log_index,
                                    key_log_proof=None if e.key_log_proof is None else
                                    [h.hex() for h in e.key_log_proof])
                 for e in found.entries])
