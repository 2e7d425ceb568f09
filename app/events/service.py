"""Notifying liaisons of what concerns them, in the same transaction as the action.

Kinds: ``packet`` (a new packet addressed to you), ``reply`` (a reply to a
request of yours), ``receipt`` (a recipient acknowledged your packet),
``share_request`` (someone asks to share your packet onward),
``share_approved`` (your share request was approved), ``share`` (a packet
was shared with you). Events carry ids and metadata, never content.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.ledger import insert_at_commit, named_insert, now
from app.models.event import Event

MAX_BATCH = 500
_COLUMNS = ("liaison_id", "ledger_index", "kind", "packet_id", "data", "created_at")
_INSERT = named_insert(Event, _COLUMNS)


def notify(session: Session, liaison_ids: Iterable[str], kind: str, packet_id: str,
           *, ledger_index: int, data: Mapping[str, Any]) -> None:
    """Queue one event per liaison, keyed by the ledger index of the action."""
    body = json.dumps({"kind": kind, "packet_id": packet_id, **data}, sort_keys=True,
                      separators=(",", ":"))
    moment = now()
    rows = [{"liaison_id": liaison_id, "ledger_index": ledger_index, "kind": kind,
             "packet_id": packet_id, "data": body, "created_at": moment}
            for liaison_id in sorted(set(liaison_ids))]
    # A plain insert at commit: cheaper than the unit of work for rows nothing reads
    # back, and sent with COMMIT (``UnitOfWork.insert_at_commit``: the head lock is held).
    insert_at_commit(session, _INSERT, rows)


def pending(session: Session, liaison_id: str, after: int) -> Sequence[Event]:
    """The liaison's events after ledger index ``after``, oldest first."""
    return session.scalars(
        select(Event).where(Event.liaison_id == liaison_id).where(Event.ledger_index > after)
        .order_by(Event.ledger_index).limit(MAX_BATCH)
    ).all()
