"""The entry encoder: a draft, its index and ``prev`` to the canonical entry bytes.

Appending speed matters (an entry per request, batches of thousands), so
:func:`encode_entry` checks the draft's fields against the rules of
:func:`ledger.format.entry.parse_entry` and builds the compact, sorted-key UTF-8
JSON directly instead of parsing what it just encoded; property tests hold it
to a naive reference encoder and to the strict parser, and ``strict=True``
re-parses for debugging.

Subjects and flat details (string, integer, boolean or null members) take a
shortcut: the sorted order of a key set, checked once, is remembered (keys
come from code, so there are a few dozen sets), and the members are checked
and quoted in one loop. Anything else goes through the general walk.
"""

from __future__ import annotations

import json
import json.encoder
from collections.abc import Callable, Mapping
from typing import Any

from ledger.errors import EntryFormatError
from ledger.format.canonical import canonical_text
from ledger.format.field import (
    ACTION_PATTERN,
    ENTRY_FIELDS,
    GENESIS_PREV,
    MAX_DEPTH,
    MAX_ENTRY_BYTES,
    MAX_SAFE_INT,
    NAME_PATTERN,
    Actor,
    EntryDraft,
    fail,
    format_time,
    is_base64,
)

__all__ = ["encode_entry"]


def encode_entry(draft: EntryDraft, index: int, prev: bytes, *, strict: bool = False) -> bytes:
    """Encode ``draft`` as the canonical entry at ``index`` whose predecessor hashes to ``prev``.

    Every field is checked against the rules of :func:`~ledger.format.entry.parse_entry`
    before the bytes are built, so nothing this function emits can later fail
    it (a property test holds the two together). ``strict=True`` also parses the
    result strictly and checks that it round trips (for tests and debugging).
    """
    if len(prev) != 32:
        fail("prev must be a 32-byte hash")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < 2**63:
        fail("index must be an integer in [0, 2**63)")
    if (index == 0) != (prev == GENESIS_PREV):
        fail("prev is 32 zero bytes exactly for index 0")
    action = _string(draft.action, "action")
    if action not in _GOOD_ACTIONS:
        if not ACTION_PATTERN.fullmatch(action):
            fail(f"action {action!r} is not a dotted lowercase name")
        _remember(_GOOD_ACTIONS, action)
    if draft.outcome == "granted":
        outcome = "granted"  # (a literal: a str subclass could print otherwise)
        if draft.reason is not None:
            fail("reason is present exactly when the outcome is denied")
        reason = ""
    elif draft.outcome == "denied":
        outcome = "denied"
        if draft.reason is None:
            fail("reason is present exactly when the outcome is denied")
        reason = _REASON + _QUOTE(_string(draft.reason, "reason")) + ","
    else:
        fail('outcome must be "granted" or "denied"')
    signature = ""
    if draft.signature is not None:
        signature = _string(draft.signature, "signature")
        if not is_base64(signature):
            fail("signature is not canonical base64")
        signature = _SIGNATURE + '"' + signature + '",'
    # The values in ENTRY_FIELDS order (the template checks their number).
    text = _TEMPLATE % (
        action, _actor_json(draft.actor), _details_json(draft.details), int(index), outcome,
        prev.hex(), reason, signature, _subject_json(draft.subject), format_time(draft.time),
    )
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate in some string
        raise EntryFormatError("entry holds a string that is not valid Unicode") from exc
    if len(raw) > MAX_ENTRY_BYTES:
        fail(f"entry of {len(raw)} bytes exceeds {MAX_ENTRY_BYTES}")
    if strict:
        _check_round_trip(raw, draft, index, prev)
    return raw


def _template() -> str:
    """The entry as one %-format with a slot per field of :data:`ENTRY_FIELDS`, in order.

    A required field is its label and its value (between quotes when it is
    always a string); an optional one is a slot for the whole member, label
    and comma included, or nothing. One %-format costs about as much as
    joining the pieces by hand and keeps the field list in one place.
    """
    members = []
    for entry_field in ENTRY_FIELDS:
        if entry_field.presence != "required":
            members.append("%s")
        else:
            value = '"%s"' if entry_field.text else "%s"
            members.append('"' + entry_field.name + '":' + value + ",")
    return "{" + "".join(members)[:-1] + "}"  # the last field is required (field.py checks)


_TEMPLATE = _template()
_REASON, _SIGNATURE, _DETAILS = ('"' + name + '":' for name in ("reason", "signature", "details"))

# json's own string encoder (C): quotes and escapes exactly as canonical_json does
# with ensure_ascii off, i.e. canonically.
_QUOTE: Callable[[str], str] = json.encoder.encode_basestring
_GOOD_ACTIONS: set[str] = set()
_GOOD_NAMES: set[str] = set()
_REMEMBERED = 4096  # names come from code, so a few dozen; the bound is a safety net
_ORDERS: dict[tuple[str, ...], tuple[tuple[str, str], ...]] = {}
"""A checked dict key set (in insertion order) -> its keys sorted, with their ``"key":`` labels."""


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
    fail(f"{what} must be a non-empty string")


def _name(key: object, what: str) -> str:
    if type(key) is str and key in _GOOD_NAMES:
        return key
    if not isinstance(key, str) or not NAME_PATTERN.fullmatch(key):
        fail(f"{what} key {key!r} is not a snake_case identifier")
    key = str.__str__(key)
    _remember(_GOOD_NAMES, key)
    return key


def _actor_json(actor: Actor | None) -> str:
    if actor is None:
        return '"system"'
    return ('{"key":' + _QUOTE(_string(actor.key, "key")) + ',"liaison":'
            + _QUOTE(_string(actor.liaison, "liaison")) + "}")


def _subject_json(subject: Mapping[str, str]) -> str:
    if type(subject) is dict and subject:  # (an empty one must fail below)
        order = _ORDERS.get(tuple(subject))
        if order is not None:  # a known key set: check and quote the values in one loop
            parts = []
            for key, label in order:
                value = subject[key]
                if type(value) is not str or not value:
                    break  # the general path names the fault
                parts.append(label + _QUOTE(value))
            else:
                return "{" + ",".join(parts) + "}"
    if not subject or (type(subject) is not dict and not isinstance(subject, Mapping)):
        fail("subject must be a non-empty object")  # (the ABC check is slow: dicts skip it)
    keys = _sorted_names(subject, "subject")
    return "{" + ",".join(['"' + key + '":' + _QUOTE(_string(subject[key], key))
                           for key in keys]) + "}"


def _sorted_names(obj: Mapping[Any, Any], what: str) -> list[str]:
    """The keys of ``obj``, checked as names and sorted; a dict's key set is remembered."""
    keys = sorted([_name(key, what) for key in obj])
    if type(obj) is dict:
        if len(_ORDERS) >= _REMEMBERED:
            _ORDERS.clear()
        _ORDERS[tuple(obj)] = tuple((key, '"' + key + '":') for key in keys)
    return keys


def _details_json(details: Mapping[str, Any]) -> str:
    if not details:
        return ""  # omitted when empty
    if type(details) is dict:
        order = _ORDERS.get(tuple(details))
        if order is not None:  # a known key set: flat members in one loop
            parts = []
            for key, label in order:
                value = details[key]
                kind = type(value)
                if kind is str:
                    parts.append(label + _QUOTE(value))
                elif kind is int and -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
                    parts.append(label + str(value))
                elif value is None or value is True or value is False:
                    parts.append(label + _CONSTANTS[value])
                else:
                    break  # nested, or to refuse: the general walk
            else:
                return _DETAILS + "{" + ",".join(parts) + "},"
    elif not isinstance(details, Mapping):
        fail("details must be an object")
    else:
        details = dict(details)
    return _DETAILS + _json_object(details, 0) + ","


def _json(value: Any, depth: int) -> str:
    """Check a details value as :func:`_check_json` would after parsing, and encode it.

    One pass instead of a check and a ``json.dumps``: the output equals
    ``canonical_text(value)`` (tuples become lists, as there), which is canonical.
    """
    if depth > MAX_DEPTH:
        fail(f"details nested deeper than {MAX_DEPTH}")
    kind = type(value)
    if kind is str:
        return _QUOTE(value)
    if kind is int:
        if -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
            return str(value)
        fail(f"integer {value} is outside the I-JSON safe range")
    if value is None or value is True or value is False:
        return _CONSTANTS[value]
    if isinstance(value, dict):
        return _json_object(value, depth)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join([_json(item, depth + 1) for item in value]) + "]"
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return _json(str.__str__(value) if isinstance(value, str) else int(value), depth)
    fail(f"unsupported JSON value {value!r}")  # floats included


_CONSTANTS = {None: "null", True: "true", False: "false"}


def _json_object(value: dict[Any, Any], depth: int) -> str:
    parts = []
    flat = depth < MAX_DEPTH  # members may be encoded inline (one level down)
    for key in _sorted_names(value, "object"):
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
    from ledger.format.entry import parse_entry  # the parser's module imports this one

    entry = parse_entry(raw)
    details = json.loads(canonical_text(dict(draft.details)))
    if (entry.index, entry.prev, entry.time, entry.actor, entry.action, dict(entry.subject),
            entry.outcome, entry.reason, dict(entry.details), entry.signature) != (
            index, bytes(prev), draft.time, draft.actor, draft.action, dict(draft.subject),
            draft.outcome, draft.reason, details, draft.signature):
        fail("entry does not round trip through the strict parser")
