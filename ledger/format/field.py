"""The one definition of a ledger entry: its fields, their order and types, its rules.

An entry is one JSON object whose members are :data:`ENTRY_FIELDS`, in that
order (the canonical order: keys sorted), with the canonical JSON rules of
:mod:`ledger.format.canonical`. The three codecs take their field lists from
here: the strict parser (:mod:`ledger.format.entry`, which also re-exports
everything public here) its required and optional keys, the fast encoder
(:mod:`ledger.format.encoder`) its output template, and the verifier's batch
check (:mod:`ledger.format.checker`) the layout of its regular expression.
The per-field rules are written down in ``ledger.format.entry``'s docstring
and ``docs/ledger-formats.md``; the patterns they use are here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, NoReturn

from ledger.errors import EntryFormatError

__all__ = [
    "ACTION_PATTERN", "CLOCK_PATTERN", "DATE_PATTERN", "ENTRY_FIELDS", "GENESIS_PREV",
    "HEX64_PATTERN", "MAX_DEPTH", "MAX_ENTRY_BYTES", "MAX_SAFE_INT", "NAME_PATTERN",
    "OPTIONAL_FIELDS", "REQUIRED_FIELDS", "SYSTEM_ACTOR", "TIME_PATTERN", "Actor", "Entry",
    "EntryDraft", "EntryField", "Outcome", "fail", "format_time", "is_base64",
]

SYSTEM_ACTOR = "system"
GENESIS_PREV = bytes(32)
MAX_ENTRY_BYTES = 64 * 1024
MAX_DEPTH = 8
MAX_SAFE_INT = 2**53 - 1  # I-JSON (RFC 7493 §2.2): exact in every JSON implementation

Outcome = Literal["granted", "denied"]


@dataclass(frozen=True)
class EntryField:
    """One member of an entry object.

    ``text`` says whether the value is always a JSON string (which the
    encoder's template quotes) or some other JSON value. ``presence`` is
    ``required``, ``optional`` (omitted when empty or absent) or ``denied``
    (present exactly when the outcome is ``denied``).
    """

    name: str
    text: bool
    presence: Literal["required", "optional", "denied"]


ENTRY_FIELDS: tuple[EntryField, ...] = (
    EntryField("action", text=True, presence="required"),  # dotted lowercase name
    EntryField("actor", text=False, presence="required"),  # "system" or {"key", "liaison"}
    EntryField("details", text=False, presence="optional"),  # object, no floats
    EntryField("index", text=False, presence="required"),  # integer >= 0
    EntryField("outcome", text=True, presence="required"),  # "granted" or "denied"
    EntryField("prev", text=True, presence="required"),  # 64 lowercase hex digits
    EntryField("reason", text=True, presence="denied"),
    EntryField("signature", text=True, presence="optional"),  # canonical standard base64
    EntryField("subject", text=False, presence="required"),  # object of strings
    EntryField("time", text=True, presence="required"),  # YYYY-MM-DDTHH:MM:SS.ffffffZ
)
"""The members of an entry, in canonical (sorted) order."""

REQUIRED_FIELDS = frozenset(f.name for f in ENTRY_FIELDS if f.presence == "required")
OPTIONAL_FIELDS = frozenset(f.name for f in ENTRY_FIELDS if f.presence != "required")

NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]*")
"""Every object key anywhere in an entry: snake_case ASCII, so every language sorts alike."""
ACTION_PATTERN = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*")
HEX64_PATTERN = re.compile(r"[0-9a-f]{64}")
DATE_PATTERN = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
CLOCK_PATTERN = r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\.[0-9]{6}Z"
TIME_PATTERN = re.compile(DATE_PATTERN + CLOCK_PATTERN)
# Canonical base64 (RFC 4648 §3.5: the bits padding hides are zero) as a flat
# character run plus a length check: a repeated 4-character group costs
# several times more in Python's regex engine.
_B64_CHARS = r"[A-Za-z0-9+/]*(?:[AQgw]==|[AEIMQUYcgkosw048]=)?"
_BASE64_CHARS = re.compile(_B64_CHARS)


def _check_definition() -> None:
    """The codecs rely on these: a wrong edit above fails at import, not in a ledger."""
    names = [f.name for f in ENTRY_FIELDS]
    if names != sorted(names) or len(set(names)) != len(names):
        raise RuntimeError("ENTRY_FIELDS must be in canonical (sorted) order, without repeats")
    if ENTRY_FIELDS[-1].presence != "required":
        raise RuntimeError("the last entry field must be required (it carries no comma)")
    if any(not NAME_PATTERN.fullmatch(name) for name in names):
        raise RuntimeError("entry field names are snake_case")


_check_definition()


def is_base64(text: str) -> bool:
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


def fail(message: str) -> NoReturn:
    """Raise :class:`EntryFormatError` with ``message``."""
    raise EntryFormatError(message)


def format_time(moment: datetime) -> str:
    """RFC 3339 UTC with exactly six fractional digits and ``Z``."""
    if moment.tzinfo is UTC:  # what the service passes: no offset to look up or apply
        return _TIME_FORMAT % (moment.year, moment.month, moment.day, moment.hour,
                               moment.minute, moment.second, moment.microsecond)
    offset = moment.utcoffset()
    if offset is None:
        fail("entry time must be timezone-aware")
    if offset:
        try:
            moment = moment - offset  # the UTC wall clock; tzinfo is not consulted below
        except OverflowError as exc:
            raise EntryFormatError(f"entry time {moment!r} is outside years 1..9999") from exc
    return _TIME_FORMAT % (moment.year, moment.month, moment.day, moment.hour, moment.minute,
                           moment.second, moment.microsecond)


# One %-format: several times cheaper than astimezone() and strftime().
_TIME_FORMAT = "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ"
