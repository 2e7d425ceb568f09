"""Appending the service's actions to the audit ledger.

Every access (granted or denied) appends exactly one ledger entry in the same
database transaction as the action it records (DESIGN.md invariant 2). A
refused request rolls its transaction back, and the refusal is then recorded
on its own in a fresh transaction (see ``app.deps.get_session``), so a denial
is logged while nothing of the refused action remains.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy.orm import Session

from app.certificates.repository import note_subject
from app.db import tree_cache_of
from app.errors import CadenaError
from app.models.ledger import LEDGER_TABLES
from ledger.entry import Actor, EntryDraft
from ledger.log import AppendedEntry, Ledger
from ledger.sqlstore import SqlStorage


def storage_for(session: Session) -> SqlStorage:
    """The ledger's storage through ``session`` (in its transaction)."""
    return SqlStorage(session, LEDGER_TABLES, cache=tree_cache_of(session))


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
    """:func:`record` for several entries, appended together (one head lock, one insert)."""
    appended = ledger_for(session).append_many(entries)
    for entry, done in zip(entries, appended, strict=True):
        note_subject(session, entry, done.index)
    return appended


class AccessDenied(CadenaError):
    """A refused access. It carries the ledger entry that records the refusal."""

    status: ClassVar[int] = 403
    code: ClassVar[str] = "forbidden"
    title: ClassVar[str] = "Access denied"

    def __init__(self, detail: str, entry: EntryDraft, **extensions: Any) -> None:
        super().__init__(detail, **extensions)
        self.entry = entry


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
) -> AccessDenied:
    """Build a refusal of ``action`` on ``subject`` with its ledger entry."""
    return error(detail, draft(actor, action, subject, reason=reason))
