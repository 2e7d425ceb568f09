"""Collecting a certificate: sealed once a checkpoint with the policy's cosignatures covers it.

DESIGN ("Custody certificate"): a certificate is handed out only once every
proof in it is against a checkpoint carrying the cosignatures its policy
requires. Issuing therefore only records the ``certificate.issue`` entry;
the checkpointer signs on its interval and ``app.witnesses.witnessing`` gathers the
witnesses' cosignatures (C2SP tlog-witness). The first collection after a
checkpoint covering the entry has met the quorum builds and seals the bundle
against that checkpoint and keeps its bytes; every later collection serves
those same bytes. Sealing on collection, not in a background thread, means
no extra thread or cross-process hand-off, work only for certificates
someone collects, and the certificate ready on the very request that finds
the quorum met. Two processes sealing at once: the first stored bundle wins
(``repository.store_bundle``), the other serves it.
"""

from __future__ import annotations

from dataclasses import dataclass

from nacl.signing import SigningKey
from sqlalchemy.orm import Session

from app.auth.service import Principal
from app.certificates import builder
from app.certificates import repository as repo
from app.certificates.service import certificate_access
from app.ledger import Hidden, Reason, deny, draft, ledger_for, now, record
from app.models.certificate import CustodyCertificate
from app.packets.access import packet_subject
from app.witnesses import repository as witnesses
from custody import Policy, cosigners
from ledger import StoredCheckpoint, parse_checkpoint_body, parse_note

COLLECT_ACTION = "certificate.collect"


@dataclass(frozen=True)
class Pending:
    """Not sealed yet: how far the cosignatures are."""

    certificate: CustodyCertificate
    cosignatures: int
    required: int
    covered: bool  # whether any signed checkpoint covers the issue entry yet


@dataclass(frozen=True)
class Sealed:
    """The sealed bundle, exactly as stored."""

    certificate: CustodyCertificate
    bundle: bytes


@dataclass(frozen=True)
class Sealer:
    """What sealing needs: the centre's policy now, its quorum, the seal key, the origin."""

    policy: Policy
    quorum: int
    seal: SigningKey
    origin: str


def cosigned_checkpoint(session: Session, sealer: Sealer,
                        index: int) -> tuple[StoredCheckpoint | None, int]:
    """The newest checkpoint covering ``index`` on which the quorum holds, and the
    most cosignatures any covering checkpoint has (for a pending answer)."""
    ledger = ledger_for(session)
    if sealer.quorum == 0:
        latest = ledger.storage.latest_checkpoint()
        return (latest if latest is not None and latest.size > index else None), 0
    ids = [w.id for w in witnesses.active(session)]
    counts = witnesses.cosignature_counts(session, index, ids)
    for size, count in counts:
        stored = ledger.signed_checkpoint(size) if count >= sealer.quorum else None
        if stored is None:
            continue
        # Counted rows are only a hint: the policy decides, over the note's lines.
        checkpoint = parse_checkpoint_body(parse_note(stored.note).text_body)
        if sealer.policy.holds(cosigners(sealer.policy, checkpoint, stored.note)):
            return stored, count
    return None, max((count for _, count in counts), default=0)


def _covered(session: Session, index: int) -> bool:
    latest = ledger_for(session).storage.latest_checkpoint()
    return latest is not None and latest.size > index


def collect(session: Session, by: Principal, certificate_id: str,
            sealer: Sealer) -> Sealed | Pending:
    """The requester's certificate, sealed now if a cosigned checkpoint covers it.

    A delivery is a ledger entry (``certificate.collect``); a pending answer
    hands out nothing and is not one. Anyone but the requester is refused (logged).
    """
    found = repo.certificate(session, certificate_id)
    if found is None or found.issued_by != by.liaison_id:
        raise deny(Hidden, "no such certificate", by.actor, COLLECT_ACTION,
                   {"type": "certificate", "id": certificate_id}, Reason.NO_SUCH_CERTIFICATE)
    certificate_access(session, by, found.packet_id, COLLECT_ACTION)  # still cleared now
    bundle = repo.stored_bundle(session, found.id)
    if bundle is None:
        stored, count = cosigned_checkpoint(session, sealer, found.ledger_index)
        if stored is None:
            return Pending(found, count, sealer.quorum, _covered(session, found.ledger_index))
        bundle = builder.build_bundle(session, found, policy=sealer.policy, seal=sealer.seal,
                                      origin=sealer.origin, stored=stored).to_bytes()
        if not repo.store_bundle(session, found.id, bundle, size=stored.size, at=now()):
            bundle = repo.stored_bundle(session, found.id) or bundle
    record(session, draft(by.actor, COLLECT_ACTION, packet_subject(found.packet_id),
                          details={"certificate": found.id}))
    return Sealed(found, bundle)
