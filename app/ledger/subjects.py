"""The subject index: which ledger entries are about which packet or liaison.

Written by :func:`note_subject` as an entry is recorded (``app.ledger.recording``),
in the same transaction; read by custody certificates and key transparency.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.ledger.unit_of_work import insert_at_commit, named_insert
from app.models.certificate import LedgerSubject
from ledger import EntryDraft

INDEXED_SUBJECTS = frozenset({"packet", "liaison"})
ENROLMENT_ACTIONS = ("liaison.enrol", "key.rotate")
MAX_SUBJECT_ID = 200
_INSERT_SUBJECT = named_insert(LedgerSubject,
                               ("subject_type", "subject_id", "ledger_index", "action"))


def note_subject(session: Session, entry: EntryDraft, index: int) -> None:
    """Index the entry at ``index`` by its subject, if it is about a packet or a liaison."""
    kind, ident = entry.subject.get("type"), entry.subject.get("id")
    if kind in INDEXED_SUBJECTS and ident and len(ident) <= MAX_SUBJECT_ID:
        # A plain insert, not the ORM: this runs for nearly every request and
        # nothing reads the row back in it. At commit: the ledger head is locked
        # from the append until then (``UnitOfWork.insert_at_commit``).
        insert_at_commit(session, _INSERT_SUBJECT, [{
            "subject_type": kind, "subject_id": ident, "ledger_index": index,
            "action": entry.action}])


def indices_about(session: Session, packet_id: str, upto: int) -> list[int]:
    """Ledger indexes of every entry about the packet, up to ``upto`` included, in order."""
    s = LedgerSubject
    return list(session.scalars(
        select(s.ledger_index).where(s.subject_type == "packet", s.subject_id == packet_id,
                                     s.ledger_index <= upto).order_by(s.ledger_index)).all())


def enrolment_indices(session: Session, liaison_ids: Iterable[str]) -> list[int]:
    """Ledger indexes of the entries that registered a key set of any of the liaisons."""
    s = LedgerSubject
    return list(session.scalars(
        select(s.ledger_index).where(s.subject_type == "liaison",
                                     s.subject_id.in_(sorted(set(liaison_ids))),
                                     s.action.in_(ENROLMENT_ACTIONS))
        .order_by(s.ledger_index)).all())


KEY_ACTIONS = ("liaison.enrol", "key.rotate", "key.replace", "key.revoke")
"""Every action that registers, replaces or ends a liaison's key set."""


def key_entry_indices(session: Session, liaison_id: str, *, start: int, upto: int,
                      limit: int) -> list[int]:
    """Ledger indexes of the liaison's key entries in ``[start, upto)``, in order."""
    s = LedgerSubject
    return list(session.scalars(
        select(s.ledger_index).where(s.subject_type == "liaison", s.subject_id == liaison_id,
                                     s.action.in_(KEY_ACTIONS), s.ledger_index >= start,
                                     s.ledger_index < upto)
        .order_by(s.ledger_index).limit(limit)).all())
