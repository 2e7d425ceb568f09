"""Queries about states, liaisons, keys and clearances (the only place that builds them)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    ScalarSelect,
    Select,
    String,
    bindparam,
    delete,
    exists,
    func,
    or_,
    select,
)
from sqlalchemy.orm import InstrumentedAttribute, Session

from app.ledger import DriverQuery
from app.models.auth import AuthToken
from app.models.base import UTCDateTime
from app.models.channel import ChannelMember
from app.models.identity import Clearance, Liaison, LiaisonKey, Role, State, StateStatus
from app.models.rotation import KeyRotationChallenge


@dataclass(frozen=True)
class TokenHolder:
    """What authentication checks of a token's key set: its revocation, liaison and state."""

    key_revoked_at: datetime | None
    role: Role
    state_code: str
    state_status: StateStatus
    clearance_level: int | None  # the highest in force now; None: none in force


@dataclass(frozen=True)
class TokenFacts:
    """A bearer token as stored, and its key set's holder (``None``: no such key set)."""

    token_id: str
    liaison_id: str
    key_id: str
    secret_hash: bytes
    expires_at: datetime
    revoked_at: datetime | None
    holder: TokenHolder | None


def get_state(session: Session, code: str) -> State | None:
    """The state with ISO code ``code``."""
    return session.get(State, code)


def list_states(session: Session) -> Sequence[State]:
    """Every state, by code."""
    return session.scalars(select(State).order_by(State.code)).all()


def states_with_active_coordinators(session: Session) -> set[str]:
    """Codes of active states holding a coordinator with a usable key set.

    The state rows are locked (``FOR UPDATE`` on PostgreSQL) until the
    transaction ends, so two coordinators suspending each other's states at
    once are decided one after the other, on what the first one committed.
    """
    usable = (select(LiaisonKey.key_id)
              .where(LiaisonKey.liaison_id == Liaison.id)
              .where(LiaisonKey.retired_at.is_(None))
              .where(LiaisonKey.revoked_at.is_(None))
              .exists())
    coordinator = (select(Liaison.id)
                   .where(Liaison.state_code == State.code)
                   .where(Liaison.role == Role.COORDINATOR)
                   .where(usable)
                   .exists())
    query = (select(State.code).where(State.status == StateStatus.ACTIVE).where(coordinator)
             .with_for_update())
    return set(session.scalars(query).all())


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


def token_query() -> Select[Any]:
    """The select behind :func:`token_facts` (parameters ``:token_id``, ``:moment``), for a
    feature to fold the token's check into its own query (one statement fewer)."""
    return cast("Select[Any]", _TOKEN)


def token_facts(session: Session, token_id: str, moment: datetime) -> TokenFacts | None:
    """The token ``token_id``, its key set's revocation, liaison role and state, and the
    liaison's clearance level in force at ``moment``: one query."""
    row = _TOKEN_READ.first(session.connection(), {"token_id": token_id, "moment": moment})
    return None if row is None else token_facts_of(row)


def token_facts_of(row: Any) -> TokenFacts:
    """The :class:`TokenFacts` in a row of :func:`token_query` (or of a query built on it)."""
    # By position (the token's columns come first in every such query): a Row's
    # attribute access costs about a microsecond a name.
    (token_id, liaison_id, key_id, secret_hash, expires_at, revoked_at, key_known,
     key_revoked_at, role, state_code, state_status, clearance_level) = row[:_TOKEN_WIDTH]
    holder = TokenHolder(key_revoked_at, role, state_code, state_status,
                         clearance_level) if key_known else None
    return TokenFacts(token_id, liaison_id, key_id, bytes(secret_hash), expires_at, revoked_at,
                      holder)


@dataclass(frozen=True)
class UsableKey:
    """A key set neither rotated out nor revoked: whose it is and its public keys."""

    liaison_id: str
    signing_public: bytes
    encryption_public: bytes


# The key set's columns and the two that decide whether it is usable: the rule is
# :func:`_usable`'s alone, for this query and for the one folded with a token.
_KEY_COLUMNS = (LiaisonKey.liaison_id.label("key_liaison_id"), LiaisonKey.signing_public,
                LiaisonKey.encryption_public, LiaisonKey.retired_at.label("key_retired_at"),
                LiaisonKey.revoked_at.label("key_revoked_at"))
_USABLE_KEY = select(*_KEY_COLUMNS).where(
    LiaisonKey.key_id == bindparam("key_id", type_=String()))
_USABLE_KEY_READ = DriverQuery(_USABLE_KEY)


def _usable(owner: str | None, signing: bytes | None, encryption: bytes | None,
            retired_at: datetime | None, revoked_at: datetime | None) -> UsableKey | None:
    """A key set read with :data:`_KEY_COLUMNS`, if usable: known, neither rotated out
    nor revoked."""
    if owner is None or signing is None or encryption is None:
        return None
    if retired_at is not None or revoked_at is not None:
        return None
    return UsableKey(owner, bytes(signing), bytes(encryption))


def usable_key(session: Session, key_id: str) -> UsableKey | None:
    """The key set ``key_id`` if it is usable (neither rotated out nor revoked), one query."""
    row = _USABLE_KEY_READ.first(session.connection(), {"key_id": key_id})
    return None if row is None else _usable(*row)


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


# Built once and run on the session's connection: building the select and the
# ORM's loading cost more than the query itself.
_TOKEN = (
    select(AuthToken.id.label("token_id"), AuthToken.liaison_id, AuthToken.key_id,
           AuthToken.secret_hash, AuthToken.expires_at, AuthToken.revoked_at,
           LiaisonKey.key_id.is_not(None).label("key_known"),
           LiaisonKey.revoked_at.label("key_revoked_at"), Liaison.role, Liaison.state_code,
           State.status.label("state_status"),
           level_in_force(Liaison.id, bindparam("moment", type_=UTCDateTime()))
           .label("clearance_level"))
    .outerjoin(LiaisonKey, LiaisonKey.key_id == AuthToken.key_id)
    .outerjoin(Liaison, Liaison.id == LiaisonKey.liaison_id)
    .outerjoin(State, State.code == Liaison.state_code)
    .where(AuthToken.id == bindparam("token_id", type_=String()))
)
_TOKEN_COLUMNS = ("token_id", "liaison_id", "key_id", "secret_hash", "expires_at", "revoked_at",
                  "key_known", "key_revoked_at", "role", "state_code", "state_status",
                  "clearance_level")
_TOKEN_WIDTH = len(_TOKEN_COLUMNS)
if list(_TOKEN.selected_columns.keys()) != list(_TOKEN_COLUMNS):  # pragma: no cover
    raise AssertionError("token_facts_of reads the token query's columns in this order")
_TOKEN_READ = DriverQuery(_TOKEN)
# The token's key set's public keys too, for a submission: its header must be signed
# by the token's own key set, if usable (the same rule as :func:`usable_key`).
_TOKEN_WITH_KEY = _TOKEN.add_columns(*_KEY_COLUMNS[:4])  # its key_revoked_at is the token's
_TOKEN_WITH_KEY_READ = DriverQuery(_TOKEN_WITH_KEY)


@dataclass(frozen=True)
class TokenAndKey:
    """A bearer token's facts and its key set if usable (``None``: rotated out, revoked
    or unknown)."""

    token: TokenFacts
    key: UsableKey | None


def token_with_usable_key(session: Session, token_id: str,
                          moment: datetime) -> TokenAndKey | None:
    """:func:`token_facts` and :func:`usable_key` of the token's key set, in one query;
    ``None`` for an unknown token."""
    row = _TOKEN_WITH_KEY_READ.first(session.connection(),
                                     {"token_id": token_id, "moment": moment})
    if row is None:
        return None
    owner, signing, encryption, retired = row[_TOKEN_WIDTH:]
    return TokenAndKey(token_facts_of(row),
                       _usable(owner, signing, encryption, retired, row.key_revoked_at))


@dataclass(frozen=True)
class Eligibility:
    """What decides whether a liaison may receive a packet in a channel now."""

    liaison_id: str
    state_code: str
    state_status: StateStatus
    is_member: bool
    level: int | None
    current_key_id: str | None


def eligibility_query() -> Select[str, str, StateStatus, bool, int | None, Any]:
    """The eligibility facts of the liaisons ``:ids`` for ``:channel_id`` at ``:moment``.

    Its rows' columns are named as :class:`Eligibility`'s fields
    (:func:`eligibility_of`); callers may add columns of other names.
    """
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
        select(Liaison.id.label("liaison_id"), Liaison.state_code,
               State.status.label("state_status"), member.label("is_member"),
               level_in_force(Liaison.id, moment).label("level"),
               current.label("current_key_id"))
        .join(State, State.code == Liaison.state_code)
        .where(Liaison.id.in_(bindparam("ids", expanding=True)))
    )


_ELIGIBILITY = eligibility_query()


def eligibility_of(row: Any) -> Eligibility:
    """The :class:`Eligibility` in a row of :func:`eligibility_query` (by column name)."""
    return Eligibility(row.liaison_id, row.state_code, row.state_status, bool(row.is_member),
                       row.level, row.current_key_id)


def eligibility(session: Session, liaison_ids: Iterable[str], channel_id: str,
                moment: datetime) -> dict[str, Eligibility]:
    """Eligibility facts of every known liaison among ``liaison_ids``, in one query."""
    ids = sorted(set(liaison_ids))
    if not ids:
        return {}
    rows = session.connection().execute(_ELIGIBILITY, {"ids": ids, "channel_id": channel_id,
                                          "moment": moment})
    return {row.liaison_id: eligibility_of(row) for row in rows}


def clearances_of(session: Session, liaison_id: str) -> Sequence[Clearance]:
    """Every clearance of the liaison, newest first."""
    return session.scalars(
        select(Clearance)
        .where(Clearance.liaison_id == liaison_id)
        .order_by(Clearance.granted_at.desc())
    ).all()


def rotation_challenge(session: Session, challenge_id: str) -> KeyRotationChallenge | None:
    """The rotation challenge ``challenge_id``, locked until the transaction ends (one use)."""
    return session.get(KeyRotationChallenge, challenge_id, with_for_update=True)


def purge_rotation_challenges(session: Session, liaison_id: str, moment: datetime) -> None:
    """Delete every expired rotation challenge, and every one of ``liaison_id``.

    A liaison has at most one outstanding challenge, and an expired one's
    ephemeral secret is not kept past the next request for a challenge.
    """
    session.execute(delete(KeyRotationChallenge).where(
        or_(KeyRotationChallenge.expires_at <= moment,
            KeyRotationChallenge.liaison_id == liaison_id)))
