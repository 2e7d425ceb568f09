"""Ledger entries: the canonical bytes that are stored, served and hashed.

An entry is one compact, sorted-key UTF-8 JSON object (see
``docs/ledger-formats.md``)::

    {"action":"packet.retrieve","actor":{"key":"k1","liaison":"l1"},
     "index":7,"outcome":"granted","prev":"<64 hex>",
     "subject":{"id":"p1","type":"packet"},"time":"2026-11-22T05:54:00.123456Z"}

(on one line). Field rules, all enforced by :func:`parse_entry`:

- ``index``: integer >= 0; ``prev``: 64 lowercase hex digits, the RFC 9162
  leaf hash of entry ``index - 1`` (64 zeros for index 0);
- ``time``: RFC 3339 UTC, always ``YYYY-MM-DDTHH:MM:SS.ffffffZ``;
- ``actor``: ``"system"`` or ``{"key": ..., "liaison": ...}`` (non-empty strings);
- ``action``: dotted lowercase name (``packet.submit``);
- ``subject``: non-empty object of non-empty strings;
- ``outcome``: ``granted`` or ``denied``; ``reason`` present iff denied;
- ``details``: omitted when empty; otherwise a JSON object without floats;
- ``signature``: omitted when absent; canonical standard base64.

Every object key anywhere is a snake_case ASCII identifier, so that any
language sorts keys the same way. The bytes are canonical: re-encoding the
parsed value gives the same bytes, so one entry has exactly one encoding and a
verifier never re-serializes.

Verification speed matters (a million entries per audit), so
:func:`check_entry` first tries one compiled regular expression that only
matches canonical entries of the common shape, and falls back to the full
strict parse for anything else. Both accept exactly the same language on the
shapes the fast path covers (tested as a property).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
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
_B64 = r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)?"
_BASE64 = re.compile(_B64)


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
    if moment.tzinfo is None or moment.utcoffset() is None:
        _fail("entry time must be timezone-aware")
    t = moment.astimezone(UTC)
    return (f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:"
            f"{t.second:02d}.{t.microsecond:06d}Z")


def _parse_time(text: str) -> datetime:
    if not _TIME.fullmatch(text):
        _fail(f"time {text!r} is not YYYY-MM-DDTHH:MM:SS.ffffffZ")
    try:
        return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)
    except ValueError:
        _fail(f"time {text!r} is not a valid date")


def _actor_value(actor: Actor | None) -> str | dict[str, str]:
    return SYSTEM_ACTOR if actor is None else {"key": actor.key, "liaison": actor.liaison}


def encode_entry(draft: EntryDraft, index: int, prev: bytes) -> bytes:
    """Encode ``draft`` as the canonical entry at ``index`` whose predecessor hashes to ``prev``.

    The result is checked strictly before it is returned (:func:`check_entry`),
    so nothing this function emits can later fail :func:`parse_entry`.
    """
    if len(prev) != 32:
        _fail("prev must be a 32-byte hash")
    if (index == 0) != (prev == GENESIS_PREV):
        _fail("prev is 32 zero bytes exactly for index 0")
    obj: dict[str, Any] = {
        "action": draft.action,
        "actor": _actor_value(draft.actor),
        "index": index,
        "outcome": draft.outcome,
        "prev": prev.hex(),
        "subject": dict(draft.subject),
        "time": format_time(draft.time),
    }
    if draft.reason is not None:
        obj["reason"] = draft.reason
    if draft.details:
        obj["details"] = dict(draft.details)
    if draft.signature is not None:
        obj["signature"] = draft.signature
    try:
        raw = _ENCODER.encode(obj).encode("utf-8")
    except (TypeError, ValueError) as exc:  # not JSON-serializable, NaN or infinity
        raise EntryFormatError(f"entry cannot be encoded: {exc}") from exc
    check_entry(raw)
    return raw


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                            allow_nan=False)


def _refuse_number(text: str) -> NoReturn:
    _fail(f"non-integer number {text!r}")


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            _fail(f"duplicate key {key!r}")
        out[key] = value
    return out


_DECODER = json.JSONDecoder(object_pairs_hook=_pairs, parse_float=_refuse_number,
                            parse_constant=_refuse_number)


def _check_json(value: Any, depth: int) -> None:
    """Details values: objects with snake_case keys, lists, strings, safe ints, bools, null."""
    if depth > MAX_DEPTH:
        _fail(f"details nested deeper than {MAX_DEPTH}")
    if isinstance(value, dict):
        for key, item in value.items():
            if not _NAME.fullmatch(key):
                _fail(f"object key {key!r} is not a snake_case identifier")
            _check_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_json(item, depth + 1)
    elif isinstance(value, int) and not isinstance(value, bool):
        if abs(value) > MAX_SAFE_INT:
            _fail(f"integer {value} is outside the I-JSON safe range")
    elif value is not None and not isinstance(value, (str, bool)):
        _fail(f"unsupported JSON value {value!r}")


def _text(obj: Mapping[str, Any], key: str) -> str:
    value = obj[key]
    if not isinstance(value, str) or not value:
        _fail(f"{key} must be a non-empty string")
    return value


def _check_actor(value: Any) -> Actor | None:
    if value == SYSTEM_ACTOR:
        return None
    if not isinstance(value, dict) or value.keys() != {"key", "liaison"}:
        _fail('actor must be "system" or {"key": ..., "liaison": ...}')
    return Actor(liaison=_text(value, "liaison"), key=_text(value, "key"))


def _check_subject(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not value:
        _fail("subject must be a non-empty object")
    for key in value:
        if not _NAME.fullmatch(key):
            _fail(f"subject key {key!r} is not a snake_case identifier")
        _text(value, key)
    return value


def _decode(data: bytes) -> dict[str, Any]:
    if len(data) > MAX_ENTRY_BYTES:
        _fail(f"entry of {len(data)} bytes exceeds {MAX_ENTRY_BYTES}")
    try:
        obj = _DECODER.decode(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise EntryFormatError("entry is not valid UTF-8") from exc
    except (ValueError, RecursionError) as exc:
        if isinstance(exc, EntryFormatError):
            raise
        raise EntryFormatError(f"entry is not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        _fail("entry is not a JSON object")
    missing, unknown = _REQUIRED - obj.keys(), obj.keys() - _REQUIRED - _OPTIONAL
    if missing or unknown:
        _fail(f"missing fields {sorted(missing)}, unknown fields {sorted(unknown)}")
    return obj


def _check_index_prev(obj: Mapping[str, Any]) -> tuple[int, bytes]:
    index = obj["index"]
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < 2**63:
        _fail("index must be an integer in [0, 2**63)")
    prev = obj["prev"]
    if not isinstance(prev, str) or not _HEX64.fullmatch(prev):
        _fail("prev must be 64 lowercase hex digits")
    if (index == 0) != (prev == "0" * 64):
        _fail("prev is 64 zeros exactly for index 0")
    return index, bytes.fromhex(prev)


def parse_entry(data: bytes) -> Entry:
    """Parse entry bytes strictly; raise :class:`EntryFormatError` unless they are canonical."""
    obj = _decode(data)
    index, prev = _check_index_prev(obj)
    action, outcome = _text(obj, "action"), obj["outcome"]
    if not _ACTION.fullmatch(action):
        _fail(f"action {action!r} is not a dotted lowercase name")
    if outcome not in ("granted", "denied"):
        _fail('outcome must be "granted" or "denied"')
    reason = _text(obj, "reason") if "reason" in obj else None
    if (reason is not None) != (outcome == "denied"):
        _fail("reason is present exactly when the outcome is denied")
    details = obj.get("details")
    if details is not None and (not isinstance(details, dict) or not details):
        _fail("details must be a non-empty object when present")
    _check_json(details, 0)
    signature = _text(obj, "signature") if "signature" in obj else None
    if signature is not None and not _BASE64.fullmatch(signature):
        _fail("signature is not canonical base64")
    entry = Entry(index=index, time=_parse_time(_text(obj, "time")),
                  actor=_check_actor(obj["actor"]), action=action,
                  subject=_check_subject(obj["subject"]), outcome=outcome, reason=reason,
                  details=details or {}, signature=signature, prev=prev, raw=data,
                  leaf_hash=hashlib.sha256(b"\x00" + data).digest())
    try:
        again = _ENCODER.encode(obj).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise EntryFormatError("entry holds a string that is not valid Unicode") from exc
    if again != data:
        _fail("entry is not in canonical form (key order, whitespace, escapes or numbers)")
    return entry


# -- fast path ---------------------------------------------------------------
# Works on the raw bytes (UTF-8 validity is checked separately). Strings here
# hold no escape at all: entries whose strings need one ('"', '\\', control
# characters) are rare and take the strict parser instead.
_STR = rb'"[^"\\\x00-\x1f]++"'
_VALUE = rb'(?:' + _STR + rb'|""|true|false|null|0|-?[1-9][0-9]{0,14})'
_KEY = rb'"([a-z][a-z0-9_]*)":'
# Up to three detail fields; their key order is checked on the captured keys.
_DETAILS = (rb'"details":\{' + _KEY + _VALUE + rb'(?:,' + _KEY + _VALUE
            + rb'(?:,' + _KEY + _VALUE + rb')?)?\},')
_FAST = re.compile(
    rb'\{"action":"' + _ACTION.pattern.encode() + rb'",'
    rb'"actor":(?:"system"|\{"key":' + _STR + rb',"liaison":' + _STR + rb'\}),'
    rb'(?:' + _DETAILS + rb')?'
    rb'"index":(0|[1-9][0-9]{0,17}),'
    rb'(?:"outcome":"granted","prev":"([0-9a-f]{64})",'
    rb'|"outcome":"denied","prev":"([0-9a-f]{64})","reason":' + _STR + rb',)'
    rb'(?:"signature":"(?!")' + _B64.encode() + rb'",)?'
    rb'"subject":\{"id":' + _STR + rb',"type":' + _STR + rb'\},'
    rb'"time":"(' + _DATE.encode() + rb')' + _CLOCK.encode() + rb'"\}'
)
_ZEROS = b"0" * 64


class EntryChecker:
    """Checks entry bytes quickly, for the verifier's single pass over the ledger.

    The fast path is one regular expression for the common shape (subject
    ``{"id", "type"}``, at most three flat detail fields); anything else goes
    through :func:`parse_entry`. The last valid date is remembered, so a run
    of entries from one day costs one calendar check.
    """

    def __init__(self) -> None:
        """Start with no date seen."""
        self._date = b""

    def check(self, data: bytes) -> tuple[int, bytes]:
        """Return ``(index, prev as lowercase hex ASCII)``; raise :class:`EntryFormatError`."""
        _, index, prev = next(self.scan((data,)))
        return index, prev

    def scan(self, entries: Iterable[bytes]) -> Iterator[tuple[bytes, int, bytes]]:
        """Yield ``(bytes, index, prev hex)`` per entry; raise at the first bad one.

        One generator for the whole pass costs less per entry than a call.
        """
        fullmatch = _FAST.fullmatch
        for data in entries:
            if not data.isascii():
                try:
                    data.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise EntryFormatError("entry is not valid UTF-8") from exc
            m = fullmatch(data) if len(data) <= MAX_ENTRY_BYTES else None
            if m is not None:
                index, granted, denied, k1, k2, k3, day = m.group(4, 5, 6, 1, 2, 3, 7)
                prev = granted or denied
                if ((index == b"0") == (prev == _ZEROS) and (k2 is None or k1 < k2)
                        and (k3 is None or k2 < k3)
                        and (day == self._date or self._new_day(day))):
                    yield data, int(index), prev
                    continue
            entry = parse_entry(data)
            yield data, entry.index, entry.prev.hex().encode("ascii")

    def _new_day(self, day: bytes) -> bool:
        try:
            date.fromisoformat(day.decode("ascii"))
        except ValueError:
            return False
        self._date = day
        return True


def check_entry(data: bytes) -> tuple[int, bytes]:
    """Return ``(index, prev)`` of canonical entry bytes or raise :class:`EntryFormatError`."""
    index, prev = EntryChecker().check(data)
    return index, bytes.fromhex(prev.decode("ascii"))
