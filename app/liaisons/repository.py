"""Queries about states, liaisons, keys and clearances (the only place that builds them)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, ScalarSelect, Select, bindparam, exists, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from app.models.auth import AuthToken
from app.models.base import UTCDateTime
from app.models.channel import ChannelMember
from app.models.identity import Clearance, Liaison, LiaisonKey, State, StateStatus

# Built once: constructing a select costs more than SQLite takes to run it.
_TOKEN_WITH_KEY = (
    select(AuthToken, LiaisonKey)
    .outerjoin(LiaisonKey, LiaisonKey.key_id == AuthToken.key_id)
    .where(AuthToken.id == bindparam("token_id"))
)


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


def token_with_key(session: Session,
                   token_id: str) -> tuple[AuthToken, LiaisonKey | None] | None:
    """A bearer token and the key set it was issued to (liaison and state loaded), one query.

    The key stays in the session's identity map for the session's life (which
    holds objects weakly, so the session's ``info`` keeps a reference): later
    ``get_key`` calls for it in the same transaction cost no query.
    """
    row = session.execute(_TOKEN_WITH_KEY, {"token_id": token_id}).first()
    if row is None:
        return None
    token, key = row
    session.info["authenticated_key"] = key
    return token, key


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


def level_in_force(liaison_id: ColumnElement[str] | InstrumentedAttribute[str],
                   moment: ColumnElement[datetime]) -> ScalarSelect[int | None]:
    """A scalar subquery: the highest clearance level of the liaison valid at ``moment``.

    The same rule as :func:`clearance_in_force`, for folding into a larger query
    (``NULL`` when no clearance is in force).
    """
    return (
        select(func.max(Clearance.level))
        .where(Clearance.liaison_id == liaison_id)
        .where(Clearance.revoked_at.is_(None))
        .where(Clearance.valid_from <= moment)
        .where(Clearance.valid_until > moment)
        .scalar_subquery()
    )


@dataclass(frozen=True)
class Eligibility:
    """What decides whether a liaison may receive a packet in a channel now."""

    liaison_id: str
    state_code: str
    state_status: StateStatus
    is_member: bool
    level: int | None
    current_key_id: str | None


def _eligibility_query() -> Select[str, str, StateStatus, bool, int | None, Any]:
    current = (
        select(LiaisonKey.key_id)
        .where(LiaisonKey.liaison_id == Liaison.id)
        .where(LiaisonKey.retired_at.is_(None))
        .where(LiaisonKey.revoked_at.is_(None))
        .order_by(LiaisonKey.created_at.desc())
        .limit(1)
        .scalar_subquery()
    )
    member = exists().where(ChannelMember.channel_id == bindparam("channel_id"),
                            ChannelMember.liaison_id == Liaison.id)
    moment = bindparam("moment", type_=UTCDateTime())
    return (
        select(Liaison.id, Liaison.state_code, State.status, member,
               level_in_force(Liaison.id, moment), current)
        .join(State, State.code == Liaison.state_code)
        .where(Liaison.id.in_(bindparam("ids", expanding=True)))
    )


_ELIGIBILITY = _eligibility_query()


def eligibility(session: Session, liaison_ids: Iterable[str], channel_id: str,
                moment: datetime) -> dict[str, Eligibility]:
    """Eligibility facts of every known liaison among ``liaison_ids``, in one query."""
    ids = sorted(set(liaison_ids))
    if not ids:
        return {}
    rows = session.execute(_ELIGIBILITY, {"ids": ids, "channel_id": channel_id,
                                          "moment": moment})
    return {row[0]: Eligibility(row[0], row[1], row[2], bool(row[3]), row[4], row[5])
            for row in rows}


def clearances_of(session: Session, liaison_id: str) -> Sequence[Clearance]:
    """Every clearance of the liaison, newest first."""
    return session.scalars(
        select(Clearance)
        .where(Clearance.liaison_id == liaison_id)
        .order_by(Clearance.granted_at.desc())
    ).all()
