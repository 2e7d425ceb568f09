"""Turning service results into response bodies (shared by the packet routers)."""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import Path

from app.auth.schemas import LedgerRef
from app.models.identity import Level
from app.packets.schemas import PacketSummary
from app.packets.service import PacketView
from ledger import AppendedEntry

PACKET_ID = r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
PacketId = Annotated[str, Path(pattern=PACKET_ID)]


def b64(data: bytes) -> str:
    """Standard base64 text."""
    return base64.b64encode(data).decode()


def ledger_ref(entry: AppendedEntry) -> LedgerRef:
    """The API form of an appended entry."""
    return LedgerRef(index=entry.index, leaf_hash=entry.leaf_hash.hex())


def summary_fields(view: PacketView) -> dict[str, Any]:
    """The metadata fields shared by every packet response."""
    p = view.packet
    return {
        "id": p.id, "channel_id": p.channel_id, "sender_id": p.sender_id,
        "recipients": view.recipients, "classification": Level(p.classification).name,
        "handling": p.handling, "evaluation": p.evaluation, "case_reference": p.case_reference,
        "legal_basis": p.legal_basis, "created": p.created, "submitted_at": p.submitted_at,
        "status": p.status, "in_reply_to": p.in_reply_to, "urgency": p.urgency, "due": p.due,
        "overdue": view.overdue,
    }


def summary(view: PacketView) -> PacketSummary:
    """A packet's metadata."""
    return PacketSummary(**summary_fields(view))
