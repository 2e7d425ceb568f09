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

Appending speed matters (an entry per request, batches of thousands), so
:func:`encode_entry` checks the draft's fields against these rules and builds
the bytes directly instead of parsing what it just encoded; a property test
holds it to the strict parser, and ``strict=True`` re-parses for debugging.
The verifier's fast check of stored bytes lives in :mod:`ledger.checker`.
"""

from __future__ import annotations

import hashlib
import json
import json.encoder
import re
from collections.abc import Callable, Mapping
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
    offset = moment.utcoffset()
    if offset is None:
        _fail("entry time must be timezone-aware")
    if offset:
        try:
            moment = moment - offset  # the UTC wall clock; tzinfo is not consulted below
        except OverflowError as exc:
            raise EntryFormatError(f"entry time {moment!r} is outside years 1..9999") from exc
    # One %-format: several times cheaper than astimezone() and strftime().
    return "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ" % (  # noqa: UP031
        moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second,
        moment.microsecond)


def _parse_time(text: str) -> datetime:
    if not _TIME.fullmatch(text):
        _fail(f"time {text!r} is not YYYY-MM-DDTHH:MM:SS.ffffffZ")
    try:
        return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)
    except ValueError:
        _fail(f"time {text!r} is not a valid date")


def encode_entry(draft: EntryDraft, index: int, prev: bytes, *, strict: bool = False) -> bytes:
    """Encode ``draft`` as the canonical entry at ``index`` whose predecessor hashes to ``prev``.

    Every field is checked against the rules of :func:`parse_entry` before the
    bytes are built, so nothing this function emits can later fail it (a
    property test holds the two together). ``strict=True`` also parses the
    result strictly and checks that it round trips (for tests and debugging).
    """
    if len(prev) != 32:
        _fail("prev must be a 32-byte hash")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < 2**63:
        _fail("index must be an integer in [0, 2**63)")
    if (index == 0) != (prev == GENESIS_PREV):
        _fail("prev is 32 zero bytes exactly for index 0")
    action = _string(draft.action, "action")
    if action not in _GOOD_ACTIONS:
        if not _ACTION.fullmatch(action):
            _fail(f"action {action!r} is not a dotted lowercase name")
        _remember(_GOOD_ACTIONS, action)
    if draft.outcome == "granted":
        if draft.reason is not None:
            _fail("reason is present exactly when the outcome is denied")
        tail = 'granted","prev":"' + prev.hex() + '",'
    elif draft.outcome == "denied":
        if draft.reason is None:
            _fail("reason is present exactly when the outcome is denied")
        tail = ('denied","prev":"' + prev.hex() + '","reason":'
                + _QUOTE(_string(draft.reason, "reason")) + ",")
    else:
        _fail('outcome must be "granted" or "denied"')
    if draft.signature is not None:
        signature = _string(draft.signature, "signature")
        if not _is_base64(signature):
            _fail("signature is not canonical base64")
        tail += '"signature":"' + signature + '",'
    text = "".join((
        '{"action":"', action, '","actor":', _actor_json(draft.actor), ",",
        _details_json(draft.details), '"index":', str(int(index)), ',"outcome":"', tail,
        '"subject":', _subject_json(draft.subject), ',"time":"', format_time(draft.time), '"}',
    ))
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate in some string
        raise EntryFormatError("entry holds a string that is not valid Unicode") from exc
    if len(raw) > MAX_ENTRY_BYTES:
        _fail(f"entry of {len(raw)} bytes exceeds {MAX_ENTRY_BYTES}")
    if strict:
        _check_round_trip(raw, draft, index, prev)
    return raw


# json's own string encoder (C): quotes and escapes exactly as _ENCODER does
# with ensure_ascii off, i.e. canonically.
_QUOTE: Callable[[str], str] = json.encoder.encode_basestring
_GOOD_ACTIONS: set[str] = set()
_GOOD_NAMES: set[str] = set()
_REMEMBERED = 4096  # names come from code, so a few dozen; the bound is a safety net


def _remember(seen: set[str], value: str) -> None:
    if len(seen) >= _REMEMBERED:
        seen.clear()
    seen.add(value)


def _string(value: object, what: str) -> str:
    """A non-empty ``str`` (subclasses such as ``StrEnum`` become plain strings)."""
    if type(value) is str and value:
        return value
    if isinstance(value, str) and value:
        return str.__str__(value)
    _fail(f"{what} must be a non-empty string")


def _name(key: object, what: str) -> str:
    if type(key) is str and key in _GOOD_NAMES:
        return key
    if not isinstance(key, str) or not _NAME.fullmatch(key):
        _fail(f"{what} key {key!r} is not a snake_case identifier")
    key = str.__str__(key)
    _remember(_GOOD_NAMES, key)
    return key


def _actor_json(actor: Actor | None) -> str:
    if actor is None:
        return '"system"'
    return ('{"key":' + _QUOTE(_string(actor.key, "key")) + ',"liaison":'
            + _QUOTE(_string(actor.liaison, "liaison")) + "}")


def _subject_json(subject: Mapping[str, str]) -> str:
    if not subject or (type(subject) is not dict and not isinstance(subject, Mapping)):
        _fail("subject must be a non-empty object")  # (the ABC check is slow: dicts skip it)
    parts = []
    for key in sorted([_name(key, "subject") for key in subject]):
        parts.append('"' + key + '":' + _QUOTE(_string(subject[key], key)))
    return "{" + ",".join(parts) + "}"


def _details_json(details: Mapping[str, Any]) -> str:
    if not details:
        return ""  # omitted when empty
    if type(details) is not dict:
        if not isinstance(details, Mapping):
            _fail("details must be an object")
        details = dict(details)
    return '"details":' + _json_object(details, 0) + ","


def _json(value: Any, depth: int) -> str:
    """Check a details value as :func:`_check_json` would after parsing, and encode it.

    One pass instead of a check and a ``json.dumps``: the output equals
    ``_ENCODER.encode(value)`` (tuples become lists, as there), which is canonical.
    """
    if depth > MAX_DEPTH:
        _fail(f"details nested deeper than {MAX_DEPTH}")
    kind = type(value)
    if kind is str:
        return _QUOTE(value)
    if kind is int:
        if -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
            return str(value)
        _fail(f"integer {value} is outside the I-JSON safe range")
    if value is None or value is True or value is False:
        return _CONSTANTS[value]
    if isinstance(value, dict):
        return _json_object(value, depth)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join([_json(item, depth + 1) for item in value]) + "]"
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return _json(str.__str__(value) if isinstance(value, str) else int(value), depth)
    _fail(f"unsupported JSON value {value!r}")  # floats included


_CONSTANTS = {None: "null", True: "true", False: "false"}


def _json_object(value: dict[Any, Any], depth: int) -> str:
    parts = []
    flat = depth < MAX_DEPTH  # members may be encoded inline (one level down)
    for key in sorted([_name(key, "object") for key in value]):
        item = value[key]
        kind = type(item)
        if flat and kind is str:  # the common members, without a call
            parts.append('"' + key + '":' + _QUOTE(item))
        elif flat and kind is int and -MAX_SAFE_INT <= item <= MAX_SAFE_INT:
            parts.append('"' + key + '":' + str(item))
        else:
            parts.append('"' + key + '":' + _json(item, depth + 1))
    return "{" + ",".join(parts) + "}"


def _check_round_trip(raw: bytes, draft: EntryDraft, index: int, prev: bytes) -> None:
    """The strict path: ``raw`` parses strictly back to ``draft`` at ``index`` after ``prev``."""
    entry = parse_entry(raw)
    details = json.loads(_ENCODER.encode(dict(draft.details)))
    if (entry.index, entry.prev, entry.time, entry.actor, entry.action, dict(entry.subject),
            entry.outcome, entry.reason, dict(entry.details), entry.signature) != (
            index, bytes(prev), draft.time, draft.actor, draft.action, dict(draft.subject),
            draft.outcome, draft.reason, details, draft.signature):
        _fail("entry does not round trip through the strict parser")


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
    if signature is not None and not _is_base64(signature):
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
