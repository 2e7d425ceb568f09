"""Queries for certificates: keys, liaisons, shares, certificates, permissions.

The only place that builds certificate queries; the ledger's entries, subject
index and proofs are read through the kernel (``app.ledger``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.models.certificate import CustodyCertificate, JudicialPermission
from app.models.identity import Liaison, LiaisonKey
from app.models.packet import KeyOrigin, PacketKey


def keys(session: Session, key_ids: Iterable[str]) -> Sequence[LiaisonKey]:
    """The registered key sets with these key ids, by key id."""
    return session.scalars(select(LiaisonKey).where(LiaisonKey.key_id.in_(sorted(set(key_ids))))
                           .order_by(LiaisonKey.key_id)).all()


def liaisons(session: Session, liaison_ids: Iterable[str]) -> Sequence[Liaison]:
    """The liaisons with these ids, by id."""
    return session.scalars(select(Liaison).where(Liaison.id.in_(sorted(set(liaison_ids))))
                           .order_by(Liaison.id)).all()


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
