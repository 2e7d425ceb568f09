"""Appending the service's actions to the audit ledger: the one place an access is recorded.

Every access (granted or denied) appends exactly one ledger entry in the same
database transaction as the action it records (DESIGN.md invariant 2), through
:func:`record_many` on the request's ``UnitOfWork``. A refused request rolls
its transaction back, and the refusal is then recorded on its own in a fresh
transaction (``app.ledger.route.settle``), so a denial is logged while nothing
of the refused action remains.

A refusal's entry says why in a reason code (``app.ledger.refusal.Reason``); facts
about third parties go to an auditor-only record bound to the entry by a
salted digest (:func:`record_refusal`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy.orm import Session

from app.errors import CadenaError
from app.ledger.refusal import PrivateDetail, public_reason
from app.ledger.subjects import note_subject
from app.ledger.unit_of_work import UnitOfWork, as_unit_of_work, tree_cache_of
from app.models.ledger import LEDGER_TABLES
from app.models.refusal import RefusalDetail
from ledger import DIGEST_FIELD, Actor, AppendedEntry, EntryDraft, Ledger
from ledger.sql import SqlStorage


def storage_for(session: Session) -> SqlStorage:
    """The ledger's storage through ``session`` (in its transaction).

    A unit of work sends its appends with its COMMIT (``UnitOfWork.commit``).
    """
    return SqlStorage(session, LEDGER_TABLES, cache=tree_cache_of(session),
                      append_at_commit=isinstance(session, UnitOfWork))


def ledger_for(session: Session) -> Ledger:
    """The ledger, stored through ``session`` (appends join its transaction)."""
    return Ledger(storage_for(session))


def now() -> datetime:
    """The current time, aware UTC (one place, so tests can reason about it)."""
    return datetime.now(UTC)


def draft(
    actor: Actor | None,
    action: str,
    subject: Mapping[str, str],
    *,
    reason: str | None = None,
    details: Mapping[str, Any] | None = None,
    signature: str | None = None,
) -> EntryDraft:
    """An entry draft: granted without ``reason``, denied with one."""
    return EntryDraft(
        time=now(),
        actor=actor,
        action=action,
        subject=dict(subject),
        outcome="denied" if reason else "granted",
        reason=reason,
        details=dict(details or {}),
        signature=signature,
    )


def record(session: Session, entry: EntryDraft) -> AppendedEntry:
    """Append ``entry`` in the session's transaction; return its index and leaf hash.

    Entries about a packet or a liaison are also indexed by subject (same
    transaction), for custody certificates (``app.certificates``).
    """
    return record_many(session, [entry])[0]


def record_many(session: Session, entries: Sequence[EntryDraft]) -> list[AppendedEntry]:
    """:func:`record` for several entries, appended together (one head lock, one insert).

    The one place an access is appended. ``session`` must be a
    :class:`~app.ledger.unit_of_work.UnitOfWork` (``TypeError`` before anything
    is written otherwise): the subject index goes in at its COMMIT.
    """
    work = as_unit_of_work(session)
    appended = ledger_for(work).append_many(entries)
    for entry, done in zip(entries, appended, strict=True):
        note_subject(work, entry, done.index)
    return appended


class AccessDenied(CadenaError):
    """A refused access. It carries the ledger entry that records the refusal.

    ``entry.reason`` is the reason code, shown in the problem body as the
    extension ``reason`` (merged where the status hides a difference:
    ``app.ledger.refusal.public_reason``). ``private``, when given, is the detail
    kept for auditors, whose digest ``entry.details`` carries.
    """

    status: ClassVar[int] = 403
    code: ClassVar[str] = "forbidden"
    title: ClassVar[str] = "Access denied"

    def __init__(self, detail: str, entry: EntryDraft, *, private: PrivateDetail | None = None,
                 **extensions: Any) -> None:
        super().__init__(detail, **extensions)
        self.entry = entry
        self.private = private
        if entry.reason is not None:
            self.extensions.setdefault("reason", public_reason(entry.reason))


class Unauthenticated(AccessDenied):
    """No valid credentials (missing, forged, expired or revoked)."""

    status, code, title = 401, "unauthenticated", "Authentication required"


class NoClearance(AccessDenied):
    """No clearance is in force right now (expired, revoked or never granted)."""

    status, code, title = 403, "no-clearance", "No clearance in force"


class Hidden(AccessDenied):
    """Refused without revealing whether the thing exists."""

    status, code, title = 404, "not-found", "Not found"


def deny(
    error: type[AccessDenied],
    detail: str,
    actor: Actor | None,
    action: str,
    subject: Mapping[str, str],
    reason: str,
    *,
    private: str | None = None,
) -> AccessDenied:
    """Build a refusal of ``action`` on ``subject`` with its ledger entry.

    ``reason`` is an ``app.ledger.refusal.Reason`` code; ``detail`` the problem's
    text for the caller, naming no third party's level or status. ``private``
    is what an auditor needs beyond the code (the recipient, their level...):
    it is kept out of the entry, which carries its salted digest instead.
    """
    secret = PrivateDetail.of(private) if private is not None else None
    details = {DIGEST_FIELD: secret.digest} if secret is not None else None
    return error(detail, draft(actor, action, subject, reason=reason, details=details),
                 private=secret)


def record_refusal(session: Session, exc: AccessDenied) -> AppendedEntry:
    """Append the refusal's entry and store its private detail, in one transaction.

    The detail row (``refusal_details``) is keyed by the entry's index, so an
    auditor can fetch it and check it against the digest the entry carries.
    """
    appended = record(session, exc.entry)
    if exc.private is not None:
        session.add(RefusalDetail(ledger_index=appended.index, salt=exc.private.salt,
                                  detail=exc.private.text))
        session.flush()
    return appended
