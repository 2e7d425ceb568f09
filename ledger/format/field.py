"""Entry fields: the types an entry is made of and the rules its fields follow.

Shared by the encoder (:mod:`ledger.format.encoder`), the strict parser
(:mod:`ledger.format.entry`, which also re-exports everything public here) and the
verifier's fast check (:mod:`ledger.format.checker`). The rules themselves are
written down in ``ledger.format.entry``'s docstring and ``docs/ledger-formats.md``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, NoReturn

from ledger.errors import EntryFormatError

SYSTEM_ACTOR = "system"
GENESIS_PREV = bytes(32)
MAX_ENTRY_BYTES = 64 * 1024
MAX_DEPTH = 8
MAX_SAFE_INT = 2**53 - 1  # I-JSON (RFC 7493 §2.2): exact in every JSON implementation

Outcome = Literal["granted", "denied"]

_REQUIRED = frozenset({"action", "actor", "index", "outcome", "prev", "subject", "time"})
_OPTIONAL = frozenset({"details", "reason", "signature"})
_NAME = re.compile(r"[a-z][a-z0-9_]*")
_ACTION = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_DATE = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
_CLOCK = r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\.[0-9]{6}Z"
_TIME = re.compile(_DATE + _CLOCK)
# Canonical base64 (RFC 4648 §3.5: the bits padding hides are zero) as a flat
# character run plus a length check: a repeated 4-character group costs
# several times more in Python's regex engine.
_B64_CHARS = r"[A-Za-z0-9+/]*(?:[AQgw]==|[AEIMQUYcgkosw048]=)?"
_BASE64_CHARS = re.compile(_B64_CHARS)


def _is_base64(text: str) -> bool:
    """Canonical standard base64: padded, and the bits that padding hides are zero."""
    return len(text) % 4 == 0 and _BASE64_CHARS.fullmatch(text) is not None


@dataclass(frozen=True)
class Actor:
    """A liaison acting with one of its keys."""

    liaison: str
    key: str


@dataclass(frozen=True)
class EntryDraft:
    """What the application records; the ledger adds ``index`` and ``prev``."""

    time: datetime
    actor: Actor | None
    action: str
    subject: Mapping[str, str]
    outcome: Outcome
    reason: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    signature: str | None = None


@dataclass(frozen=True)
class Entry:
    """A parsed, verified-canonical entry together with its exact bytes."""

    index: int
    time: datetime
    actor: Actor | None
    action: str
    subject: Mapping[str, str]
    outcome: Outcome
    reason: str | None
    details: Mapping[str, Any]
    signature: str | None
    prev: bytes
    raw: bytes
    leaf_hash: bytes


def _fail(message: str) -> NoReturn:
    raise EntryFormatError(message)


def format_time(moment: datetime) -> str:
    """RFC 3339 UTC with exactly six fractional digits and ``Z``."""
    if moment.tzinfo is UTC:  # what the service passes: no offset to look up or apply
        return _TIME_FORMAT % (moment.year, moment.month, moment.day, moment.hour,
                               moment.minute, moment.second, moment.microsecond)
    offset = moment.utcoffset()
    if offset is None:
        _fail("entry time must be timezone-aware")
    if offset:
        try:
            moment = moment - offset  # the UTC wall clock; tzinfo is not consulted below
        except OverflowError as exc:
            raise EntryFormatError(f"entry time {moment!r} is outside years 1..9999") from exc
    return _TIME_FORMAT % (moment.year, moment.month, moment.day, moment.hour, moment.minute,
                           moment.second, moment.microsecond)


# One %-format: several times cheaper than astimezone() and strftime().
_TIME_FORMAT = "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ"
