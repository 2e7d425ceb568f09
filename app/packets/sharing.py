"""Receipts and onward sharing: client-signed objects the server verifies and logs.

A receipt is verified with the key the packet was wrapped to for that
recipient (``crypto.verify_receipt``) and must name this packet, its header
and its ciphertext digests. A key share is verified with the sharer's key
(``crypto.verify_key_share``); its new recipient must be eligible like any
recipient (member, cleared, active state, current key). Handling code H2
needs the originator's recorded approval of a share request by that
holder for that recipient (DESIGN.md "Handling codes"); an approval is spent
only by the holder who asked; H0, H1 and H3 packets may be shared
without one, and every share is logged with the sharer's signature.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy.orm import Session

from app.auth.service import Principal
from app.errors import NotFound
from app.events.service import notify
from app.identity import repository as liaisons
from app.ledger import Reason, deny, draft, now, record
from app.models.packet import (
    KeyOrigin,
    PacketKey,
    PacketReceipt,
    ShareRequest,
    ShareRequestStatus,
)
from app.packets import repository as repo
from app.packets.access import PacketAccess, ineligibility, packet_access, recipient_refusal
from app.packets.errors import (
    InvalidEncoding,
    NotAHolder,
    ObjectMismatch,
    OriginatorOnly,
    PacketConflict,
    ShareNotApproved,
    SignatureRefused,
)
from app.packets.submission import parse_time
from crypto import (
    BadSignature,
    CryptoError,
    KeyShare,
    LiaisonPublicKeys,
    verify_key_share,
    verify_receipt,
)
from ledger import AppendedEntry

T = TypeVar("T")


@dataclass(frozen=True)
class Done(Generic[T]):
    """The result of an action and the ledger entry that records it."""

    value: T
    entry: AppendedEntry


def _decode(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise InvalidEncoding("a signed object or signature is not valid base64") from None


def _holder(by: Principal, access: PacketAccess, action: str) -> PacketKey:
    if access.holding is None:
        raise deny(NotAHolder, "only a recipient of the packet may do this", by.actor, action,
                   access.subject, Reason.NOT_A_RECIPIENT)
    return access.holding


def _holder_keys(session: Session, by: Principal, access: PacketAccess, action: str,
                 *, held: PacketKey) -> LiaisonPublicKeys:
    key = liaisons.get_key(session, held.key_id)
    if key is None or key.revoked_at is not None:
        raise deny(SignatureRefused, "the key this packet was wrapped to is revoked", by.actor,
                   action, access.subject, Reason.KEY_REVOKED)
    return LiaisonPublicKeys(signing=key.signing_public, encryption=key.encryption_public)


def add_receipt(session: Session, by: Principal, packet_id: str, signed_b64: str,
                *, signature_b64: str) -> Done[PacketReceipt]:
    """Verify and store a recipient's signed receipt (``packet.receipt``, with its signature)."""
    action = "packet.receipt"
    access = packet_access(session, by, packet_id, action, deliver=False)
    held = _holder(by, access, action)
    raw, signature = _decode(signed_b64), _decode(signature_b64)
    try:
        receipt = verify_receipt(raw, signature, _holder_keys(session, by, access, action,
                                                              held=held))
    except CryptoError:
        raise deny(SignatureRefused, "the receipt does not verify with your key", by.actor,
                   action, access.subject, Reason.BAD_SIGNATURE) from None
    packet = access.packet
    digests = tuple(s.sha256 for s in repo.streams(session, packet.id))
    if (receipt.packet_id != packet.id or receipt.recipient.id != by.liaison_id
            or receipt.header_sha256 != packet.header_sha256
            or receipt.ciphertext_sha256 != digests):
        raise deny(ObjectMismatch, "the receipt names another packet, header or content",
                   by.actor, action, access.subject, Reason.OBJECT_MISMATCH)
    if repo.receipt(session, packet.id, by.liaison_id) is not None:
        raise deny(PacketConflict, "you have already given a receipt for this packet",
                   by.actor, action, access.subject, Reason.RECEIPT_ALREADY_GIVEN)
    stored = PacketReceipt(packet_id=packet.id, recipient_id=by.liaison_id, key_id=held.key_id,
                           receipt=raw, signature=signature,
                           received=parse_time(receipt.received), recorded_at=now())
    session.add(stored)
    session.flush()
    entry = record(session, draft(
        by.actor, action, access.subject, signature=base64.b64encode(signature).decode(),
        details={"key_id": held.key_id, "received": receipt.received,
                 "receipt_sha256": hashlib.sha256(raw).hexdigest()}))
    notify(session, [packet.sender_id], "receipt", packet.id, ledger_index=entry.index,
           data={"from": by.liaison_id})
    return Done(stored, entry)


def receipts(session: Session, by: Principal, packet_id: str) -> Done[Sequence[PacketReceipt]]:
    """Every receipt of a packet, for its originator; logged (``packet.receipts``)."""
    action = "packet.receipts"
    access = packet_access(session, by, packet_id, action, deliver=False)
    if not access.is_sender:
        raise deny(OriginatorOnly, "only the originator reads a packet's receipts", by.actor,
                   action, access.subject, Reason.ORIGINATOR_ONLY)
    found = repo.receipts(session, packet_id)
    entry = record(session, draft(by.actor, action, access.subject,
                                  details={"returned": len(found)}))
    return Done(found, entry)


def _check_new_recipient(session: Session, by: Principal, access: PacketAccess, action: str,
                         *, recipient_id: str, key_id: str | None) -> None:
    packet = access.packet
    if key_id is None:
        current = liaisons.current_key(session, recipient_id)
        key_id = current.key_id if current else "none"
    why = ineligibility(session, recipient_id, key_id, packet.channel_id,
                        classification=packet.classification, moment=now())
    if why is not None:
        raise recipient_refusal(by, action, access.subject, recipient_id, why=why)
    if recipient_id == packet.sender_id or repo.holding(session, packet.id, recipient_id):
        raise deny(PacketConflict, f"{recipient_id} already has this packet", by.actor, action,
                   access.subject, Reason.RECIPIENT_HAS_PACKET,
                   private=f"{recipient_id} already has the packet")


def request_share(session: Session, by: Principal, packet_id: str,
                  recipient_id: str) -> Done[ShareRequest]:
    """A recipient asks the originator to let them share onward (``packet.share_request``)."""
    action = "packet.share_request"
    access = packet_access(session, by, packet_id, action, deliver=True)
    _holder(by, access, action)
    _check_new_recipient(session, by, access, action, recipient_id=recipient_id, key_id=None)
    if repo.open_request(session, packet_id, by.liaison_id, recipient_id) is not None:
        raise deny(PacketConflict, "a request to share with this liaison is open", by.actor,
                   action, access.subject, Reason.SHARE_REQUEST_OPEN,
                   private=f"a request by {by.liaison_id} to share with {recipient_id} is open")
    request = ShareRequest(id=secrets.token_hex(16), packet_id=packet_id,
                           requested_by=by.liaison_id, recipient_id=recipient_id,
                           status=ShareRequestStatus.PENDING, requested_at=now())
    session.add(request)
    session.flush()
    entry = record(session, draft(by.actor, action, access.subject, details={
        "request": request.id, "recipient": recipient_id, "handling": access.packet.handling}))
    notify(session, [access.packet.sender_id], "share_request", packet_id, ledger_index=entry.index,
           data={"request": request.id, "from": by.liaison_id, "recipient": recipient_id})
    return Done(request, entry)


def approve_share(session: Session, by: Principal, packet_id: str,
                  request_id: str) -> Done[ShareRequest]:
    """The originator approves a share request (``packet.share_approve``)."""
    action = "packet.share_approve"
    access = packet_access(session, by, packet_id, action, deliver=False)
    if not access.is_sender:
        raise deny(OriginatorOnly, "only the originator approves sharing", by.actor, action,
                   access.subject, Reason.ORIGINATOR_ONLY)
    request = repo.share_request(session, request_id)
    if request is None or request.packet_id != packet_id:
        raise NotFound(f"no share request {request_id} for this packet",
                       subject={"type": "packet", "id": packet_id})
    if request.status != ShareRequestStatus.PENDING:
        raise deny(PacketConflict, f"the request is {request.status}", by.actor, action,
                   access.subject, Reason.SHARE_REQUEST_DECIDED,
                   private=f"share request {request.id} {request.status}")
    request.status = ShareRequestStatus.APPROVED
    request.decided_at = now()
    session.flush()
    entry = record(session, draft(by.actor, action, access.subject, details={
        "request": request.id, "recipient": request.recipient_id,
        "requested_by": request.requested_by}))
    notify(session, [request.requested_by], "share_approved", packet_id, ledger_index=entry.index,
           data={"request": request.id, "recipient": request.recipient_id})
    return Done(request, entry)


def share_requests(session: Session, by: Principal,
                   packet_id: str) -> Done[Sequence[ShareRequest]]:
    """Share requests: all for the originator, a recipient's own otherwise; logged."""
    action = "packet.share_requests"
    access = packet_access(session, by, packet_id, action, deliver=False)
    found = repo.share_requests(session, packet_id,
                                None if access.is_sender else by.liaison_id)
    entry = record(session, draft(by.actor, action, access.subject,
                                  details={"returned": len(found)}))
    return Done(found, entry)


def _verified_share(session: Session, by: Principal, access: PacketAccess, action: str,
                    *, signed_b64: str, signature_b64: str) -> tuple[KeyShare, bytes, bytes]:
    held = _holder(by, access, action)
    raw, signature = _decode(signed_b64), _decode(signature_b64)
    try:
        share = verify_key_share(raw, signature, _holder_keys(session, by, access, action,
                                                              held=held))
    except (BadSignature, CryptoError):
        raise deny(SignatureRefused, "the key share does not verify with your key", by.actor,
                   action, access.subject, Reason.BAD_SIGNATURE) from None
    packet = access.packet
    if (share.packet_id != packet.id or share.header_sha256 != packet.header_sha256
            or share.sharer.id != by.liaison_id):
        raise deny(ObjectMismatch, "the key share names another packet or sharer", by.actor,
                   action, access.subject, Reason.OBJECT_MISMATCH)
    return share, raw, signature


def _approval(session: Session, by: Principal, access: PacketAccess, action: str,
              *, recipient_id: str) -> str | None:
    if access.packet.handling != "H2":
        return None
    # The approval answers one holder's request: another holder of the packet
    # may not spend it (issue 16), so it is looked up by sharer and target.
    approved = repo.open_request(session, access.packet.id, by.liaison_id, recipient_id,
                                 status=ShareRequestStatus.APPROVED)
    if approved is None:
        raise deny(ShareNotApproved, "H2: the originator has not approved your sharing with "
                   f"{recipient_id}", by.actor, action, access.subject,
                   Reason.SHARE_NOT_APPROVED,
                   private=f"no approval for {by.liaison_id} to share with {recipient_id}")
    approved.status = ShareRequestStatus.USED
    return approved.id


def share(session: Session, by: Principal, packet_id: str, signed_b64: str,
          *, signature_b64: str) -> Done[tuple[PacketKey, str | None]]:
    """Accept a signed key share: the new recipient holds a wrapped key (``packet.share``)."""
    action = "packet.share"
    access = packet_access(session, by, packet_id, action, deliver=True)
    key_share, raw, signature = _verified_share(session, by, access, action, signed_b64=signed_b64,
                                                signature_b64=signature_b64)
    target = key_share.recipient
    _check_new_recipient(session, by, access, action, recipient_id=target.id, key_id=target.key_id)
    approval = _approval(session, by, access, action, recipient_id=target.id)
    held = PacketKey(packet_id=packet_id, liaison_id=target.id, key_id=target.key_id,
                     origin=KeyOrigin.SHARE, wrapped_key=key_share.wrapped_key, share=raw,
                     share_signature=signature, shared_by=by.liaison_id, added_at=now())
    session.add(held)
    session.flush()
    entry = record(session, draft(
        by.actor, action, access.subject, signature=base64.b64encode(signature).decode(),
        details={"recipient": target.id, "recipient_key_id": target.key_id,
                 "handling": access.packet.handling,
                 "share_sha256": hashlib.sha256(raw).hexdigest(),
                 **({"approval": approval} if approval else {})}))
    notify(session, [target.id], "share", packet_id, ledger_index=entry.index,
           data={"from": by.liaison_id})
    return Done((held, approval), entry)
