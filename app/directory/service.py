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
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from app.auth.service import Principal
from app.directory import repository as repo
from app.ledger import draft, key_entry_indices, key_log_for, ledger_for, raw_entries, record
from app.ledger_api.service import NoCheckpoint, OutOfRange
from app.models.identity import LiaisonKey
from ledger import KeyLeaf, KeyLogHead, ProofError, StoredCheckpoint, merkle, parse_entry

if TYPE_CHECKING:
    from ledger.sql import SqlKeyLog

MAX_PAGE = 1000
MAX_LEAVES = 10_000
"""Key-log leaves per answer (about 80 bytes each)."""


@dataclass(frozen=True)
class ProvenEntry:
    """One key entry: its index, exact bytes, inclusion proof, and the key set it names."""

    index: int
    entry: bytes
    proof: list[bytes]
    key: LiaisonKey | None
    key_log_index: int | None = None
    key_log_proof: list[bytes] | None = None


@dataclass(frozen=True)
class DirectoryView:
    """A liaison's key entries proven against one signed checkpoint."""

    liaison_id: str
    note: str
    size: int
    since: int | None
    consistency: list[bytes] | None
    entries: list[ProvenEntry]
    key_log: KeyLogHead | None = None
    key_consistency: list[bytes] | None = None


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
         since: int | None = None, witnessed: int = 0, limit: int = MAX_PAGE,
         key_since: int | None = None) -> DirectoryView:
    """The liaison's key entries from index ``start``, proven in one signed checkpoint.

    The checkpoint is the newest with ``witnessed`` cosignatures, else the
    latest. When it carries the key log, the entries are those the key log
    lists under the liaison, each with its key-log index and inclusion proof,
    and ``key_since`` (a key-log size signed before) gets a key-log
    consistency proof.
    """
    ledger = ledger_for(session)
    latest = _checkpoint(session, witnessed)
    key_log = key_log_for(session)
    head = key_log.head_at(latest.size)
    limit = min(limit, MAX_PAGE)
    if head is None:  # a checkpoint signed before the key log existed
        keyed: dict[int, int] = {}
        indices = key_entry_indices(session, liaison_id, start=start, upto=latest.size,
                                    limit=limit)
    else:
        found = key_log.entries_of(liaison_id, start=start, key_size=head.size, limit=limit)
        keyed = {k.ledger_index: k.key_index for k in found}
        indices = [k.ledger_index for k in found]
    raw = raw_entries(session, indices)
    keys = repo.keys_by_id(session, liaison_id)
    key_proofs = {} if head is None else key_log.inclusion_proofs(list(keyed.values()),
                                                                  head.size)
    entries = [ProvenEntry(i, raw[i], ledger.inclusion_proof(i, latest.size),
                           _named_key(raw[i], keys), keyed.get(i),
                           key_proofs.get(keyed[i]) if i in keyed else None)
               for i in indices]
    consistency = _consistency(session, since, latest.size)
    key_consistency = None if head is None else _key_consistency(key_log, key_since, head.size)
    record(session, draft(by.actor, "directory.read", {"type": "liaison", "id": liaison_id},
                          details={"size": latest.size, "returned": len(entries)}))
    return DirectoryView(liaison_id, latest.note, latest.size, since, consistency, entries,
                         head, key_consistency)


def _key_consistency(key_log: SqlKeyLog, since: int | None, size: int) -> list[bytes] | None:
    # As for the ledger: nothing from 0, nothing from a larger size (the
    # client sees that shrink itself); a size no checkpoint carried is a fork.
    if since is None or since <= 0 or since > size:
        return None
    if not key_log.is_signed_size(since):
        raise NoCheckpoint(f"no signed checkpoint carries a key log of size {since}")
    return merkle.consistency_proof(key_log, since, size)


def _key_subject(what: str) -> dict[str, str]:
    return {"type": "key-log", "id": what}


def key_leaves(session: Session, by: Principal, start: int, limit: int) -> list[KeyLeaf]:
    """Key-log leaves from ``start`` (any liaison; logged): what a self-check scans.

    Only leaves some signed checkpoint carries exist; ``start`` past them is
    :class:`OutOfRange`.
    """
    key_log = key_log_for(session)
    size = key_log.size()
    if start > size:
        raise OutOfRange(f"the key log has {size} leaves; start {start} is past them")
    leaves = key_log.leaves(start, min(size, start + min(limit, MAX_LEAVES)))
    record(session, draft(by.actor, "directory.read", _key_subject(f"leaves:{start}"),
                          details={"returned": len(leaves)}))
    return leaves


def key_inclusion(session: Session, by: Principal, index: int, size: int) -> list[bytes]:
    """Inclusion proof of key-log leaf ``index`` in a key log a checkpoint carries; logged."""
    if not 0 <= index < size:
        raise OutOfRange(f"leaf {index} is not in a key log of size {size}")
    key_log = key_log_for(session)
    if not key_log.is_signed_size(size):
        raise NoCheckpoint(f"no signed checkpoint carries a key log of size {size}")
    proof = merkle.inclusion_proof(key_log, index, size)
    record(session, draft(by.actor, "directory.read", _key_subject(f"inclusion:{index}@{size}")))
    return proof


def key_consistency(session: Session, by: Principal, old: int, new: int) -> list[bytes]:
    """Consistency proof between two key-log sizes checkpoints carry; logged."""
    if not 0 < old <= new:
        raise OutOfRange("consistency needs 0 < from <= to (from 0 is meaningless)")
    key_log = key_log_for(session)
    for size in (old, new):
        if not key_log.is_signed_size(size):
            raise NoCheckpoint(f"no signed checkpoint carries a key log of size {size}")
    proof = merkle.consistency_proof(key_log, old, new)
    record(session, draft(by.actor, "directory.read", _key_subject(f"consistency:{old}-{new}")))
    return proof


def _named_key(raw: bytes, keys: dict[str, LiaisonKey]) -> LiaisonKey | None:
    # The key set row the entry registers, for convenience: the client checks
    # it against the entry's own public keys, never the other way round.
    key_id = parse_entry(raw).details.get("key_id")
    return keys.get(key_id) if isinstance(key_id, str) else None
