"""Rules for the key directory: every liaison reads every liaison's key entries, proven.

DESIGN.md invariant 7: a client accepts a key only with the inclusion proof
of the entry that registered it in a signed, witnessed checkpoint, and each
client watches its own liaison's entries. So, unlike other ledger reads
(auditors only), any authenticated liaison may read the key entries
(``liaison.enrol``, ``key.rotate``, ``key.replace``, ``key.revoke``) of any
liaison, each with its RFC 9162 inclusion proof in the latest signed
checkpoint, and a consistency proof from the size the client saw last. The
read is logged (``directory.read``), as every read is.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from app.auth.service import Principal
from app.directory import repository as repo
from app.ledger import draft, key_entry_indices, ledger_for, raw_entries, record
from app.ledger_api.service import NoCheckpoint
from app.models.identity import LiaisonKey
from ledger import ProofError, StoredCheckpoint, parse_entry

MAX_PAGE = 1000


@dataclass(frozen=True)
class ProvenEntry:
    """One key entry: its index, exact bytes, inclusion proof, and the key set it names."""

    index: int
    entry: bytes
    proof: list[bytes]
    key: LiaisonKey | None


@dataclass(frozen=True)
class DirectoryView:
    """A liaison's key entries proven against one signed checkpoint."""

    liaison_id: str
    note: str
    size: int
    since: int | None
    consistency: list[bytes] | None
    entries: list[ProvenEntry]


def _consistency(session: Session, since: int | None, size: int) -> list[bytes] | None:
    # RFC 9162 §2.1.4: nothing to prove from 0 (meaningless) or from a larger
    # size (the client sees the rollback itself by comparing sizes).
    if since is None or since <= 0 or since > size:
        return None
    try:
        return ledger_for(session).consistency_proof(since, size)
    except ProofError as exc:  # the client saw a size this ledger never signed: a fork
        raise NoCheckpoint(f"no signed checkpoint of size {since}: {exc}") from exc


def _checkpoint(session: Session, witnessed: int) -> StoredCheckpoint:
    # Witnesses cosign a checkpoint a moment after it is signed, and the
    # ledger grows (and is signed) every interval: a client that needs k
    # cosignatures asks for the newest checkpoint that has them. If none
    # has, the latest is served and the client refuses it for its quorum.
    ledger = ledger_for(session)
    size = repo.newest_cosigned_size(session, witnessed) if witnessed > 0 else None
    chosen = ledger.signed_checkpoint(size) if size is not None else None
    latest = chosen or ledger.storage.latest_checkpoint()
    if latest is None:
        raise NoCheckpoint("no checkpoint has been signed yet")
    return latest


def view(session: Session, by: Principal, liaison_id: str, *, start: int = 0,
         since: int | None = None, witnessed: int = 0, limit: int = MAX_PAGE) -> DirectoryView:
    """The liaison's key entries from index ``start``, proven in one signed checkpoint.

    The checkpoint is the newest with ``witnessed`` cosignatures, else the latest.
    """
    ledger = ledger_for(session)
    latest = _checkpoint(session, witnessed)
    indices = key_entry_indices(session, liaison_id, start=start, upto=latest.size,
                                     limit=min(limit, MAX_PAGE))
    raw = raw_entries(session, indices)
    keys = repo.keys_by_id(session, liaison_id)
    entries = [ProvenEntry(i, raw[i], ledger.inclusion_proof(i, latest.size),
                           _named_key(raw[i], keys)) for i in indices]
    consistency = _consistency(session, since, latest.size)
    record(session, draft(by.actor, "directory.read", {"type": "liaison", "id": liaison_id},
                          details={"size": latest.size, "returned": len(entries)}))
    return DirectoryView(liaison_id, latest.note, latest.size, since, consistency, entries)


def _named_key(raw: bytes, keys: dict[str, LiaisonKey]) -> LiaisonKey | None:
    # The key set row the entry registers, for convenience: the client checks
    # it against the entry's own public keys, never the other way round.
    key_id = parse_entry(raw).details.get("key_id")
    return keys.get(key_id) if isinstance(key_id, str) else None
