"""``/v1/packets/{id}/...``: receipts, share requests, key shares, withdrawal, threads."""

from __future__ import annotations

from fastapi import APIRouter

from app.auth.dependencies import PrincipalDep
from app.ledger import SessionDep, UnitOfWorkRoute
from app.models.packet import PacketReceipt, ShareRequest
from app.packets import service, sharing
from app.packets.present import PacketId, b64, ledger_ref, summary, summary_fields
from app.packets.schemas import (
    PacketWithdrawn,
    ReceiptCreated,
    ReceiptList,
    ReceiptRead,
    ShareCreated,
    ShareRequestCreate,
    ShareRequestDone,
    ShareRequestList,
    ShareRequestRead,
    SignedObjectCreate,
    ThreadRead,
    WithdrawCreate,
)

router = APIRouter(route_class=UnitOfWorkRoute)


def _receipt_fields(r: PacketReceipt) -> dict[str, object]:
    return {"recipient_id": r.recipient_id, "key_id": r.key_id, "receipt": b64(r.receipt),
            "signature": b64(r.signature), "received": r.received,
            "recorded_at": r.recorded_at}


def _request_fields(r: ShareRequest) -> dict[str, object]:
    return {"id": r.id, "packet_id": r.packet_id, "requested_by": r.requested_by,
            "recipient_id": r.recipient_id, "status": r.status,
            "requested_at": r.requested_at, "decided_at": r.decided_at}


@router.post("/{packet_id}/receipts", status_code=201, name="packet.receipt")
def add_receipt(packet_id: PacketId, body: SignedObjectCreate, session: SessionDep,
                by: PrincipalDep) -> ReceiptCreated:
    """A recipient's signed receipt (``crypto.make_receipt``): non-repudiation of receipt."""
    done = sharing.add_receipt(session, by, packet_id, body.signed, signature_b64=body.signature)
    return ReceiptCreated.model_validate(_receipt_fields(done.value)
                                         | {"ledger": ledger_ref(done.entry)})


@router.get("/{packet_id}/receipts", name="packet.receipts")
def list_receipts(packet_id: PacketId, session: SessionDep, by: PrincipalDep) -> ReceiptList:
    """Every receipt of a packet (its originator only)."""
    done = sharing.receipts(session, by, packet_id)
    return ReceiptList(receipts=[ReceiptRead.model_validate(_receipt_fields(r))
                                 for r in done.value], ledger=ledger_ref(done.entry))


@router.post("/{packet_id}/share-requests", status_code=201, name="packet.share_request")
def request_share(packet_id: PacketId, body: ShareRequestCreate, session: SessionDep,
                  by: PrincipalDep) -> ShareRequestDone:
    """A recipient asks the originator to let them share the packet with another liaison."""
    done = sharing.request_share(session, by, packet_id, body.recipient_id)
    return ShareRequestDone.model_validate(_request_fields(done.value)
                                           | {"ledger": ledger_ref(done.entry)})


@router.get("/{packet_id}/share-requests", name="packet.share_requests")
def list_share_requests(packet_id: PacketId, session: SessionDep,
                        by: PrincipalDep) -> ShareRequestList:
    """Share requests: all of them for the originator, a recipient's own otherwise."""
    done = sharing.share_requests(session, by, packet_id)
    return ShareRequestList(requests=[ShareRequestRead.model_validate(_request_fields(r))
                                      for r in done.value], ledger=ledger_ref(done.entry))


@router.post("/{packet_id}/share-requests/{request_id}/approve",
             name="packet.share_approve")
def approve_share(packet_id: PacketId, request_id: str, session: SessionDep,
                  by: PrincipalDep) -> ShareRequestDone:
    """The originator approves sharing with the requested liaison (needed for H2)."""
    done = sharing.approve_share(session, by, packet_id, request_id)
    return ShareRequestDone.model_validate(_request_fields(done.value)
                                           | {"ledger": ledger_ref(done.entry)})


@router.post("/{packet_id}/shares", status_code=201, name="packet.share")
def share_packet(packet_id: PacketId, body: SignedObjectCreate, session: SessionDep,
                 by: PrincipalDep) -> ShareCreated:
    """A recipient's signed key share (``crypto.share_content_key``) for a new recipient."""
    done = sharing.share(session, by, packet_id, body.signed, signature_b64=body.signature)
    held, approval = done.value
    return ShareCreated(packet_id=held.packet_id, recipient_id=held.liaison_id,
                        key_id=held.key_id, shared_by=by.liaison_id, approval=approval,
                        ledger=ledger_ref(done.entry))


@router.post("/{packet_id}/withdraw", name="packet.withdraw")
def withdraw_packet(packet_id: PacketId, body: WithdrawCreate, session: SessionDep,
                    by: PrincipalDep) -> PacketWithdrawn:
    """The originator withdraws a packet: its key is no longer delivered to anyone."""
    view, entry = service.withdraw(session, by, packet_id, body.reason)
    return PacketWithdrawn(**summary_fields(view), withdrawn_at=view.packet.withdrawn_at,
                           withdrawal_reason=view.packet.withdrawal_reason,
                           ledger=ledger_ref(entry))


@router.get("/{packet_id}/thread", name="packet.thread")
def packet_thread(packet_id: PacketId, session: SessionDep, by: PrincipalDep) -> ThreadRead:
    """The request a packet belongs to and its replies the caller may see, oldest first."""
    root, views, entry = service.thread(session, by, packet_id)
    return ThreadRead(root=root, packets=[summary(v) for v in views], ledger=ledger_ref(entry))
