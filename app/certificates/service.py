"""Rules for certificates: who may issue one, H1 permission, refresh material.

A certificate may be issued by the packet's originator, by a recipient (a
header or share recipient), each through the clearance gate of the packets
(``app.packets.access``), or by a coordinator with a clearance in force at or
above the packet's classification. Withdrawn packets get certificates too:
their history is evidence. For an H1 packet the originator must first have
recorded permission for judicial use before that very court
(``packet.judicial_permission``). Every grant and every refusal is one
ledger entry about the packet. Nothing here commits.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from app.auth.service import Principal
from app.certificates import repository as repo
from app.certificates.errors import InvalidRefresh, JudicialPermissionRequired
from app.identity import repository as liaisons
from app.ledger import Hidden, Reason, deny, draft, ledger_for, now, record
from app.models.certificate import CustodyCertificate, JudicialPermission
from app.models.identity import Role
from app.models.packet import Packet
from app.packets import repository as packets
from app.packets.access import clearance_refusal, packet_access, packet_subject
from app.packets.errors import OriginatorOnly, PacketConflict
from crypto import uuid7
from custody import ISSUE_ACTION, PERMISSION_ACTION
from ledger import AppendedEntry, ProofError, StoredCheckpoint

REFRESH_ACTION = "certificate.refresh"


@dataclass(frozen=True)
class Issued:
    """A certificate row and its ``certificate.issue`` entry."""

    certificate: CustodyCertificate
    entry: AppendedEntry


@dataclass(frozen=True)
class Granted:
    """A recorded judicial-use permission and its entry."""

    permission: JudicialPermission
    entry: AppendedEntry


@dataclass(frozen=True)
class RefreshMaterial:
    """The newest checkpoint and the consistency proof from a certificate's size."""

    certificate_id: str
    old_size: int
    checkpoint: StoredCheckpoint
    proof: list[bytes]
    entry: AppendedEntry


def certificate_access(session: Session, by: Principal, packet_id: str, action: str) -> Packet:
    """The packet, if ``by`` may have a certificate of it now; else a logged refusal."""
    if by.role != Role.COORDINATOR:
        return packet_access(session, by, packet_id, action, deliver=False).packet
    subject = packet_subject(packet_id)
    packet = packets.get(session, packet_id)
    if packet is None:
        raise deny(Hidden, "no such packet", by.actor, action, subject, Reason.NO_SUCH_PACKET)
    clearance = liaisons.clearance_in_force(session, by.liaison_id, now())
    refusal = clearance_refusal(clearance.level if clearance else None, packet.classification)
    if refusal is not None:
        raise refusal.deny(by, action, subject)
    return packet


def grant_permission(session: Session, by: Principal, packet_id: str, court: str,
                     *, purpose: str | None) -> Granted:
    """The originator permits judicial use of the packet before ``court`` (logged)."""
    access = packet_access(session, by, packet_id, PERMISSION_ACTION, deliver=False)
    if not access.is_sender:
        raise deny(OriginatorOnly, "only the originator permits judicial use", by.actor,
                   PERMISSION_ACTION, access.subject, Reason.ORIGINATOR_ONLY)
    if repo.permission(session, packet_id, court) is not None:
        raise deny(PacketConflict, f"judicial use before {court} is already permitted",
                   by.actor, PERMISSION_ACTION, access.subject, Reason.PERMISSION_ALREADY_GIVEN,
                   private=f"judicial use before {court} is already permitted")
    details = {"court": court, "handling": access.packet.handling}
    entry_draft = draft(by.actor, PERMISSION_ACTION, access.subject,
                        details=details | ({"purpose": purpose} if purpose else {}))
    entry = record(session, entry_draft)
    permission = JudicialPermission(packet_id=packet_id, court=court, purpose=purpose,
                                    granted_by=by.liaison_id, granted_at=entry_draft.time,
                                    ledger_index=entry.index)
    session.add(permission)
    session.flush()
    return Granted(permission, entry)


def issue(session: Session, by: Principal, packet_id: str, issued_to: str,
          purpose: str, *, reissue_of: str | None = None) -> Issued:
    """Record the issue of a certificate for ``issued_to`` (``certificate.issue``).

    The certificate is pending until a cosigned checkpoint covers the entry
    (``app.certificates.sealing``). ``reissue_of``: the certificate this one renews.
    """
    packet = certificate_access(session, by, packet_id, ISSUE_ACTION)
    subject = packet_subject(packet_id)
    if packet.handling == "H1" and repo.permission(session, packet_id, issued_to) is None:
        raise deny(JudicialPermissionRequired,
                   f"H1: the originator has not permitted judicial use before {issued_to}",
                   by.actor, ISSUE_ACTION, subject, Reason.JUDICIAL_PERMISSION_REQUIRED,
                   private=f"no judicial permission for {issued_to}")
    certificate_id = uuid7()
    entry_draft = draft(by.actor, ISSUE_ACTION, subject, details={
        "certificate": certificate_id, "issued_to": issued_to, "purpose": purpose,
        "handling": packet.handling} | ({"reissue_of": reissue_of} if reissue_of else {}))
    entry = record(session, entry_draft)
    row = CustodyCertificate(id=certificate_id, packet_id=packet_id, issued_to=issued_to,
                             purpose=purpose, issued_by=by.liaison_id,
                             issued_at=entry_draft.time, ledger_index=entry.index,
                             reissue_of=reissue_of)
    session.add(row)
    session.flush()
    return Issued(row, entry)


def reissue(session: Session, by: Principal, certificate_id: str) -> Issued:
    """Record a new version of a certificate: same packet, court and purpose (logged)."""
    found = repo.certificate(session, certificate_id)
    if found is None:
        raise deny(Hidden, "no such certificate", by.actor, ISSUE_ACTION,
                   {"type": "certificate", "id": certificate_id}, Reason.NO_SUCH_CERTIFICATE)
    return issue(session, by, found.packet_id, found.issued_to, found.purpose,
                 reissue_of=found.id)


def refresh_material(session: Session, by: Principal, certificate_id: str,
                     old_size: int) -> RefreshMaterial:
    """The latest checkpoint and a consistency proof from ``old_size`` to it (logged)."""
    found = repo.certificate(session, certificate_id)
    if found is None:
        raise deny(Hidden, "no such certificate", by.actor, REFRESH_ACTION,
                   {"type": "certificate", "id": certificate_id}, Reason.NO_SUCH_CERTIFICATE)
    subject = packet_subject(found.packet_id)
    certificate_access(session, by, found.packet_id, REFRESH_ACTION)
    ledger = ledger_for(session)
    latest = ledger.storage.latest_checkpoint()
    if latest is None or not found.ledger_index < old_size <= latest.size:
        raise InvalidRefresh(f"size {old_size} is not a checkpoint of this certificate")
    try:
        proof = ledger.consistency_proof(old_size, latest.size)
    except ProofError as exc:
        raise InvalidRefresh(str(exc)) from None
    entry = record(session, draft(by.actor, REFRESH_ACTION, subject, details={
        "certificate": certificate_id, "from": old_size, "to": latest.size}))
    return RefreshMaterial(certificate_id, old_size, latest, proof, entry)
