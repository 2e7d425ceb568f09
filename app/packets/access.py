"""The clearance gate: who may touch a packet at this instant (DESIGN.md invariant 3).

Checked on every request, not at login: the caller is a prosecutor and a
party to the packet (its sender, or a holder of a wrapped key — a header
recipient or a share recipient), a member of its channel, with a clearance
in force now at or above its classification. The caller's state being active
and key not revoked are checked for every request by authentication
(``app.auth.service.authenticate``). A withdrawn packet is refused to
everyone but its originator wherever its key or ciphertext would be delivered.

Unknown packets and packets the caller is no party to get the same 404, so
that a packet's existence leaks to no one outside it; the ledger entry says
which it was.

Refusals name the rule (``app.ledger.refusal.Reason``); levels and statuses go to
the entry's auditor-only detail, since entries reach courts in certificates.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy.orm import Session

from app.auth.dependencies import Credentials
from app.auth.service import Principal
from app.identity import repository as liaisons
from app.ledger import AccessDenied, Hidden, Reason, deny, now
from app.models.identity import Level, Role, StateStatus
from app.models.packet import Packet, PacketKey, PacketStatus
from app.packets import repository as repo
from app.packets.cursor import decode_cursor
from app.packets.errors import (
    BelowChannelMinimum,
    InsufficientClearance,
    InvalidCursor,
    NoClearance,
    NotAMember,
    RecipientNotEligible,
    Withdrawn,
)
from app.packets.listing import ListedPacket, PacketFilter, listing_with_token


@dataclass(frozen=True)
class PacketAccess:
    """A granted access: the packet, the caller's wrapped key (if any), their role in it."""

    packet: Packet
    holding: PacketKey | None
    is_sender: bool
    level: int

    @property
    def subject(self) -> dict[str, str]:
        """The ledger subject of the packet."""
        return packet_subject(self.packet.id)


def packet_subject(packet_id: str) -> dict[str, str]:
    """The ledger subject naming a packet."""
    return {"type": "packet", "id": packet_id}


def level_name(level: int) -> str:
    """``RESTRICTED`` / ``CONFIDENTIAL`` / ``SECRET``."""
    return Level(level).name


@dataclass(frozen=True)
class Refusal:
    """Why a clearance rule refuses: the problem type, the code, the caller's text,
    and the auditor-only detail (levels) that the ledger entry leaves out."""

    error: type[AccessDenied]
    reason: Reason
    detail: str
    private: str | None = None

    def deny(self, by: Principal, action: str, subject: dict[str, str]) -> AccessDenied:
        """The logged refusal of ``action`` by ``by``."""
        return deny(self.error, self.detail, by.actor, action, subject, self.reason,
                    private=self.private)


NO_CLEARANCE = "no clearance in force"


def clearance_refusal(level_in_force: int | None, classification: int) -> Refusal | None:
    """Why a clearance does not cover ``classification`` (``None``: it does)."""
    if level_in_force is None:
        return Refusal(NoClearance, Reason.NO_CLEARANCE, NO_CLEARANCE)
    if level_in_force < classification:
        return Refusal(InsufficientClearance, Reason.CLEARANCE_TOO_LOW,
                       "your clearance is below the classification",
                       f"clearance {level_name(level_in_force)} is below "
                       f"{level_name(classification)}")
    return None


def submission_refusal(sender_level: int | None, classification: int,
                       channel_min: int) -> Refusal | None:
    """Why a sender may not submit at ``classification`` in a channel (``None``: allowed).

    The rule: the classification is at least the channel's minimum and at
    most the sender's clearance in force.
    """
    refusal = clearance_refusal(sender_level, classification)
    if refusal is None and classification < channel_min:
        refusal = Refusal(BelowChannelMinimum, Reason.BELOW_CHANNEL_MINIMUM,
                          "the classification is below the channel's minimum",
                          f"classification {level_name(classification)} is below the "
                          f"channel minimum {level_name(channel_min)}")
    return refusal


def _cleared_level(by: Principal, action: str, subject: dict[str, str],
                   classification: int, *, member: bool, level: int | None) -> int:
    """The caller's level in force, or a logged refusal (not a member, or not cleared)."""
    if not member:
        raise deny(NotAMember, "you are not a member of this channel", by.actor, action,
                   subject, Reason.NOT_A_MEMBER)
    if level is None:
        raise deny(NoClearance, NO_CLEARANCE, by.actor, action, subject, Reason.NO_CLEARANCE)
    refusal = clearance_refusal(level, classification)
    if refusal is not None:
        raise refusal.deny(by, action, subject)
    return level


def require_prosecutor(by: Principal, action: str, subject: dict[str, str]) -> None:
    """Packets are for prosecutors only; coordinators and auditors never see them."""
    if by.role != Role.PROSECUTOR:
        raise deny(AccessDenied, "packets are exchanged between prosecutors", by.actor, action,
                   subject, Reason.WRONG_ROLE)


def packet_access(session: Session, by: Principal, packet_id: str, action: str, *,
                  deliver: bool) -> PacketAccess:
    """Check every rule for ``by`` to do ``action`` on the packet now, or refuse (logged).

    ``deliver``: the action hands out the packet's key or ciphertext, which a
    withdrawn packet refuses to all but its originator.
    """
    require_prosecutor(by, action, packet_subject(packet_id))
    facts = repo.access_facts(session, packet_id, by.liaison_id, now())
    if facts is None:
        raise _unknown(by, packet_id, action)
    is_sender, level = _gate(by, packet_id, action, facts.packet, held=facts.holding is not None,
                             is_member=facts.is_member, level=facts.level, deliver=deliver)
    return PacketAccess(facts.packet, facts.holding, is_sender, level)


@dataclass(frozen=True)
class Authenticated:
    """The caller of a retrieval and the packet's facts, read with the token (one query)."""

    principal: Principal
    found: tuple[repo.RetrievalFacts, repo.PacketContents] | None


@dataclass(frozen=True)
class RetrievalCredentials:
    """A retrieval's credentials: resolved in the request's thread (``app.ledger.route.Deferred``)
    by one query that reads the token and, for its liaison, the packet.

    Every check of the token is :func:`app.auth.service.authenticate`'s, made
    before anything read of the packet is looked at, so refusals are those of
    any other route, and logged alike.
    """

    credentials: Credentials
    packet_id: str

    def resolve(self, session: Session) -> Authenticated:
        """The caller and what the query read of the packet for them, or a logged 401."""
        principal, read = self.credentials.resolve_with(
            session, lambda token_id, moment: repo.retrieval_with_token(
                session, token_id, self.packet_id, moment))
        return Authenticated(principal, read.retrieval)


@dataclass(frozen=True)
class Submitter:
    """The caller of a submission and their token's key set, if usable (one query)."""

    principal: Principal
    key: liaisons.UsableKey | None


@dataclass(frozen=True)
class SubmissionCredentials:
    """A submission's credentials: resolved in the request's thread (``app.ledger.route.Deferred``)
    by one query that reads the token and its key set's public keys.

    As for :class:`RetrievalCredentials`, every check of the token is
    :func:`app.auth.service.authenticate`'s, made first, on what the query read.
    """

    credentials: Credentials

    def resolve(self, session: Session) -> Submitter:
        """The caller and their usable key, or a logged 401."""
        principal, read = self.credentials.resolve_with(
            session, lambda token_id, moment: liaisons.token_with_usable_key(
                session, token_id, moment))
        return Submitter(principal, read.key)


@dataclass(frozen=True)
class Listed:
    """The caller of a listing, what they asked for, and the page read with their token
    (``None``: not read)."""

    principal: Principal
    wanted: PacketFilter
    limit: int
    cursor: str | None
    page: list[ListedPacket] | None


@dataclass(frozen=True)
class ListingCredentials:
    """A listing's credentials: resolved in the request's thread (``app.ledger.route.Deferred``)
    by one query that reads the token and, for its liaison, the page asked for.

    As for :class:`RetrievalCredentials`, every check of the token is made first,
    on what the query read. A cursor that does not decode is not folded in:
    the token is read alone, and the listing refuses the cursor after the
    token's and the role's checks, as before.
    """

    credentials: Credentials
    wanted: PacketFilter
    limit: int
    cursor: str | None

    def resolve(self, session: Session) -> Listed:
        """The caller and the page the query read for them, or a logged 401."""
        try:
            after = decode_cursor(self.cursor) if self.cursor else None
        except InvalidCursor:
            return self._listed(self.credentials.resolve(session), None)
        principal, read = self.credentials.resolve_with(
            session, lambda token_id, moment: listing_with_token(
                session, token_id, moment, self.wanted, after=after, limit=self.limit + 1))
        return self._listed(principal, read.page)

    def _listed(self, principal: Principal, page: list[ListedPacket] | None) -> Listed:
        return Listed(principal, self.wanted, self.limit, self.cursor, page)


@dataclass(frozen=True)
class RetrievalAccess:
    """A granted retrieval: the packet and the caller's wrapped key (if any), as read."""

    packet: repo.PacketRecord
    holding: repo.HoldingRecord | None
    is_sender: bool
    level: int

    @property
    def subject(self) -> dict[str, str]:
        """The ledger subject of the packet."""
        return packet_subject(self.packet.id)


def retrieval_access(session: Session, by: Principal, packet_id: str, action: str,
                     *, read: Authenticated | None = None
                     ) -> tuple[RetrievalAccess, repo.PacketContents]:
    """:func:`packet_access` for an action that delivers the key and names the streams,
    with the header recipients and streams read in the same query (``read``: already
    read, with the token)."""
    require_prosecutor(by, action, packet_subject(packet_id))
    found = (read.found if read is not None
             else repo.retrieval_facts(session, packet_id, by.liaison_id, now()))
    if found is None:
        raise _unknown(by, packet_id, action)
    facts, contents = found
    is_sender, level = _gate(by, packet_id, action, facts.packet, held=facts.holding is not None,
                             is_member=facts.is_member, level=facts.level, deliver=True)
    return RetrievalAccess(facts.packet, facts.holding, is_sender, level), contents


def _unknown(by: Principal, packet_id: str, action: str) -> AccessDenied:
    return deny(Hidden, "no such packet", by.actor, action, packet_subject(packet_id),
                Reason.NO_SUCH_PACKET)


class GatedPacket(Protocol):
    """What the gate reads of a packet (an ORM ``Packet`` or a ``repo.PacketRecord``)."""

    @property
    def sender_id(self) -> str: ...
    @property
    def classification(self) -> int: ...
    @property
    def status(self) -> PacketStatus: ...
    @property
    def withdrawal_reason(self) -> str | None: ...


def _gate(by: Principal, packet_id: str, action: str, packet: GatedPacket, *, held: bool,
          is_member: bool, level: int | None, deliver: bool) -> tuple[bool, int]:
    """Whether the caller sent the packet and their level in force, or a logged refusal."""
    subject = packet_subject(packet_id)
    is_sender = packet.sender_id == by.liaison_id
    if not held and not is_sender:
        raise deny(Hidden, "no such packet", by.actor, action, subject, Reason.NOT_A_PARTY)
    cleared = _cleared_level(by, action, subject, packet.classification, member=is_member,
                             level=level)
    if deliver and packet.status == PacketStatus.WITHDRAWN and not is_sender:
        raise deny(Withdrawn, f"the originator withdrew this packet: {packet.withdrawal_reason}",
                   by.actor, action, subject, Reason.PACKET_WITHDRAWN)
    return is_sender, cleared


def ineligibility(session: Session, liaison_id: str, key_id: str, channel_id: str,
                  *, classification: int, moment: datetime) -> str | None:
    """Why ``liaison_id`` (with key ``key_id``) may not receive a packet now, or ``None``."""
    facts = liaisons.eligibility(session, [liaison_id], channel_id, moment)
    return eligibility_refusal(facts.get(liaison_id), key_id, channel_id, classification)


def eligibility_refusal(facts: liaisons.Eligibility | None, key_id: str, channel_id: str,
                        classification: int) -> str | None:
    """Why a liaison with these facts may not receive a packet with key ``key_id``, or ``None``.

    The rules, in order: a known liaison, of an active state, a member of the
    channel, cleared for the classification now, and ``key_id`` their current key.
    """
    if facts is None:
        return "unknown liaison"
    if facts.state_status != StateStatus.ACTIVE:
        return f"state {facts.state_code} is {facts.state_status}"
    if not facts.is_member:
        return f"not a member of channel {channel_id}"
    refusal = clearance_refusal(facts.level, classification)
    if refusal is not None:
        return refusal.private or refusal.detail
    if facts.current_key_id is None or facts.current_key_id != key_id:
        return f"key {key_id} is not the liaison's current key"
    return None


def recipient_refusal(by: Principal, action: str, subject: dict[str, str], recipient_id: str,
                      *, why: str) -> AccessDenied:
    """The logged refusal of a recipient who may not receive the packet.

    ``why`` (the recipient's state, status, membership, level or key) goes only
    to the auditor-only detail: the caller and the readers of the entry learn
    that the recipient is not eligible, not why.
    """
    return deny(RecipientNotEligible, f"recipient {recipient_id} may not receive this packet",
                by.actor, action, subject, Reason.RECIPIENT_NOT_ELIGIBLE,
                private=f"recipient {recipient_id}: {why}")
