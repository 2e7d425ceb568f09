"""Queries about states, liaisons, keys and clearances (the only place that builds them)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models.identity import Clearance, Liaison, LiaisonKey, State


def get_state(session: Session, code: str) -> State | None:
    """The state with ISO code ``code``."""
    return session.get(State, code)


def list_states(session: Session) -> Sequence[State]:
    """Every state, by code."""
    return session.scalars(select(State).order_by(State.code)).all()


def get_liaison(session: Session, liaison_id: str) -> Liaison | None:
    """The liaison with id ``liaison_id`` (its state loaded)."""
    return session.get(Liaison, liaison_id)


def list_liaisons(session: Session, state_code: str | None = None) -> Sequence[Liaison]:
    """Liaisons, optionally of one state, by id."""
    query = select(Liaison).order_by(Liaison.id)
    if state_code:
        query = query.where(Liaison.state_code == state_code)
    return session.scalars(query).all()


def get_key(session: Session, key_id: str) -> LiaisonKey | None:
    """A key set by its key id."""
    return session.get(LiaisonKey, key_id)


def current_key(session: Session, liaison_id: str) -> LiaisonKey | None:
    """The liaison's usable key set, if any (at most one is usable at a time)."""
    return session.scalars(
        select(LiaisonKey)
        .where(LiaisonKey.liaison_id == liaison_id)
        .where(LiaisonKey.retired_at.is_(None))
        .where(LiaisonKey.revoked_at.is_(None))
        .order_by(LiaisonKey.created_at.desc())
    ).first()


def keys_of(session: Session, liaison_id: str) -> Sequence[LiaisonKey]:
    """Every key set the liaison ever had, newest first."""
    return session.scalars(
        select(LiaisonKey)
        .where(LiaisonKey.liaison_id == liaison_id)
        .order_by(LiaisonKey.created_at.desc())
    ).all()


def clearance_in_force(session: Session, liaison_id: str, moment: datetime) -> Clearance | None:
    """The highest clearance of the liaison valid at ``moment``."""
    query = (
        select(Clearance)
        .where(Clearance.liaison_id == liaison_id)
        .where(Clearance.revoked_at.is_(None))
        .where(Clearance.valid_from <= moment)
        .where(Clearance.valid_until > moment)
        .order_by(Clearance.level.desc(), Clearance.valid_until.desc())
    )
    return session.scalars(query).first()


def clearances_of(session: Session, liaison_id: str) -> Sequence[Clearance]:
    """Every clearance of the liaison, newest first."""
    return session.scalars(
        select(Clearance)
        .where(Clearance.liaison_id == liaison_id)
        .order_by(Clearance.granted_at.desc())
    ).all()
