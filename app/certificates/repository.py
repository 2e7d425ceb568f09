"""Queries for certificates: entries by subject, raw entries, certificates, permissions.

The only place that builds certificate queries.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from app.ledger.engine import insert_at_commit
from app.models.certificate import CustodyCertificate, JudicialPermission, LedgerSubject
from app.models.identity import Liaison, LiaisonKey
from app.models.ledger import LEDGER_TABLES
from app.models.packet import KeyOrigin, PacketKey
from ledger.entry import EntryDraft

INDEXED_SUBJECTS = frozenset({"packet", "liaison"})
ENROLMENT_ACTIONS = ("liaison.enrol", "key.rotate")
MAX_SUBJECT_ID = 200
_SUBJECT_COLUMNS = ("subject_type", "subject_id", "ledger_index", "action")
_INSERT_SUBJECT = insert(LedgerSubject).values({c: bindparam(c) for c in _SUBJECT_COLUMNS})


def note_subject(session: Session, entry: EntryDraft, index: int) -> None:
    """Index the entry at ``index`` by its subject, if it is about a packet or a liaison."""
    kind, ident = entry.subject.get("type"), entry.subject.get("id")
    if kind in INDEXED_SUBJECTS and ident and len(ident) <= MAX_SUBJECT_ID:
        # A plain insert, not the unit of work: this runs for nearly every request
        # and nothing reads the row back in it. At commit: the ledger head is
        # locked from the append until then (``app.ledger.engine.insert_at_commit``).
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


def keys(session: Session, key_ids: Iterable[str]) -> Sequence[LiaisonKey]:
    """The registered key sets with these key ids, by key id."""
    return session.scalars(select(LiaisonKey).where(LiaisonKey.key_id.in_(sorted(set(key_ids))))
                           .order_by(LiaisonKey.key_id)).all()


def liaisons(session: Session, liaison_ids: Iterable[str]) -> Sequence[Liaison]:
    """The liaisons with these ids, by id."""
    return session.scalars(select(Liaison).where(Liaison.id.in_(sorted(set(liaison_ids))))
                           .order_by(Liaison.id)).all()


def raw_entries(session: Session, indices: Iterable[int]) -> dict[int, bytes]:
    """The exact bytes of the entries at ``indices``."""
    wanted = sorted(set(indices))
    if not wanted:
        return {}
    c = LEDGER_TABLES.entries.c
    rows = session.execute(select(c.index, c.entry).where(c.index.in_(wanted)))
    return {int(index): bytes(raw) for index, raw in rows}


def shares(session: Session, packet_id: str) -> Sequence[PacketKey]:
    """The packet's onward shares (wrapped keys with a signed share), by recipient."""
    return session.scalars(select(PacketKey).where(
        PacketKey.packet_id == packet_id, PacketKey.origin == KeyOrigin.SHARE)
        .order_by(PacketKey.liaison_id)).all()


def certificate(session: Session, certificate_id: str) -> CustodyCertificate | None:
    """The certificate with that id."""
    return session.get(CustodyCertificate, certificate_id)


def permission(session: Session, packet_id: str, court: str) -> JudicialPermission | None:
    """The originator's permission to use the packet before ``court``, if recorded."""
    return session.get(JudicialPermission, (packet_id, court))


def stored_bundle(session: Session, certificate_id: str) -> bytes | None:
    """The sealed bytes of the certificate, read afresh (another process may have sealed it)."""
    c = CustodyCertificate
    found = session.execute(select(c.bundle).where(c.id == certificate_id)).scalar_one_or_none()
    return None if found is None else bytes(found)


def store_bundle(session: Session, certificate_id: str, bundle: bytes, *, size: int,
                 at: datetime) -> bool:
    """Keep the sealed bytes unless another request sealed the certificate first."""
    c = CustodyCertificate
    done = session.execute(
        update(c).where(c.id == certificate_id, c.bundle.is_(None))
        .values(bundle=bundle, checkpoint_size=size, sealed_at=at)
        .execution_options(synchronize_session=False))
    return bool(getattr(done, "rowcount", 0) == 1)
