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

This module is the strict parser and the public face of entries. The one
definition of the fields (names, order, presence, patterns) is
:mod:`ledger.format.field`; the fast encoder (:func:`encode_entry`,
:mod:`ledger.format.encoder`) and the verifier's fast check of stored bytes
(:mod:`ledger.format.checker`) build their templates from it, as this parser
takes its required and optional keys from it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ledger.errors import EntryFormatError
from ledger.format.canonical import StrictJSON, canonical_json
from ledger.format.encoder import encode_entry
from ledger.format.field import (
    ACTION_PATTERN,
    GENESIS_PREV,
    HEX64_PATTERN,
    MAX_DEPTH,
    MAX_ENTRY_BYTES,
    MAX_SAFE_INT,
    NAME_PATTERN,
    OPTIONAL_FIELDS,
    REQUIRED_FIELDS,
    SYSTEM_ACTOR,
    TIME_PATTERN,
    Actor,
    Entry,
    EntryDraft,
    Outcome,
    fail,
    format_time,
    is_base64,
)

__all__ = [
    "GENESIS_PREV", "MAX_DEPTH", "MAX_ENTRY_BYTES", "MAX_SAFE_INT", "SYSTEM_ACTOR", "Actor",
    "Entry", "EntryDraft", "Outcome", "encode_entry", "format_time", "parse_entry",
]


def _parse_time(text: str) -> datetime:
    if not TIME_PATTERN.fullmatch(text):
        fail(f"time {text!r} is not YYYY-MM-DDTHH:MM:SS.ffffffZ")
    try:
        return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)
    except ValueError:
        fail(f"time {text!r} is not a valid date")


_JSON = StrictJSON(EntryFormatError, not_json="entry is not JSON",
                   not_utf8="entry is not valid UTF-8")


def _check_json(value: Any, depth: int) -> None:
    """Details values: objects with snake_case keys, lists, strings, safe ints, bools, null."""
    if depth > MAX_DEPTH:
        fail(f"details nested deeper than {MAX_DEPTH}")
    if isinstance(value, dict):
        for key, item in value.items():
            if not NAME_PATTERN.fullmatch(key):
                fail(f"object key {key!r} is not a snake_case identifier")
            _check_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_json(item, depth + 1)
    elif isinstance(value, int) and not isinstance(value, bool):
        if abs(value) > MAX_SAFE_INT:
            fail(f"integer {value} is outside the I-JSON safe range")
    elif value is not None and not isinstance(value, (str, bool)):
        fail(f"unsupported JSON value {value!r}")


def _text(obj: Mapping[str, Any], key: str) -> str:
    value = obj[key]
    if not isinstance(value, str) or not value:
        fail(f"{key} must be a non-empty string")
    return value


def _check_actor(value: Any) -> Actor | None:
    if value == SYSTEM_ACTOR:
        return None
    if not isinstance(value, dict) or value.keys() != {"key", "liaison"}:
        fail('actor must be "system" or {"key": ..., "liaison": ...}')
    return Actor(liaison=_text(value, "liaison"), key=_text(value, "key"))


def _check_subject(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not value:
        fail("subject must be a non-empty object")
    for key in value:
        if not NAME_PATTERN.fullmatch(key):
            fail(f"subject key {key!r} is not a snake_case identifier")
        _text(value, key)
    return value


def _decode(data: bytes) -> dict[str, Any]:
    if len(data) > MAX_ENTRY_BYTES:
        fail(f"entry of {len(data)} bytes exceeds {MAX_ENTRY_BYTES}")
    obj = _JSON.load(data)
    if not isinstance(obj, dict):
        fail("entry is not a JSON object")
    missing, unknown = REQUIRED_FIELDS - obj.keys(), obj.keys() - REQUIRED_FIELDS - OPTIONAL_FIELDS
    if missing or unknown:
        fail(f"missing fields {sorted(missing)}, unknown fields {sorted(unknown)}")
    return obj


def _check_index_prev(obj: Mapping[str, Any]) -> tuple[int, bytes]:
    index = obj["index"]
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < 2**63:
        fail("index must be an integer in [0, 2**63)")
    prev = obj["prev"]
    if not isinstance(prev, str) or not HEX64_PATTERN.fullmatch(prev):
        fail("prev must be 64 lowercase hex digits")
    if (index == 0) != (prev == "0" * 64):
        fail("prev is 64 zeros exactly for index 0")
    return index, bytes.fromhex(prev)


def parse_entry(data: bytes) -> Entry:
    """Parse entry bytes strictly; raise :class:`EntryFormatError` unless they are canonical."""
    obj = _decode(data)
    index, prev = _check_index_prev(obj)
    action, outcome = _text(obj, "action"), obj["outcome"]
    if not ACTION_PATTERN.fullmatch(action):
        fail(f"action {action!r} is not a dotted lowercase name")
    if outcome not in ("granted", "denied"):
        fail('outcome must be "granted" or "denied"')
    reason = _text(obj, "reason") if "reason" in obj else None
    if (reason is not None) != (outcome == "denied"):
        fail("reason is present exactly when the outcome is denied")
    details = obj.get("details")
    if details is not None and (not isinstance(details, dict) or not details):
        fail("details must be a non-empty object when present")
    _check_json(details, 0)
    signature = _text(obj, "signature") if "signature" in obj else None
    if signature is not None and not is_base64(signature):
        fail("signature is not canonical base64")
    entry = Entry(index=index, time=_parse_time(_text(obj, "time")),
                  actor=_check_actor(obj["actor"]), action=action,
                  subject=_check_subject(obj["subject"]), outcome=outcome, reason=reason,
                  details=details or {}, signature=signature, prev=prev, raw=data,
                  leaf_hash=hashlib.sha256(b"\x00" + data).digest())
    try:
        again = canonical_json(obj)
    except UnicodeEncodeError as exc:
        raise EntryFormatError("entry holds a string that is not valid Unicode") from exc
    if again != data:
        fail("entry is not in canonical form (key order, whitespace, escapes or numbers)")
    return entry

