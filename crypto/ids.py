"""Identifiers and times as they appear in signed objects.

* Packet ids are UUIDv7 strings (RFC 9562 §5.7): 48-bit Unix milliseconds,
  version 7, 74 random bits. Python 3.11 has no generator, so we provide one.
* Liaison, channel and other actor ids are opaque short ASCII tokens chosen
  by the service; we only constrain their alphabet so they embed safely.
* Times are RFC 3339 UTC with a ``Z`` suffix and whole seconds.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from crypto.errors import FormatError, InvalidArgument

RandomSource = Callable[[int], bytes]

_ACTOR_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")
_UUID7 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def uuid7(unix_ms: int | None = None, random: RandomSource = os.urandom) -> str:
    """Return a new UUIDv7 as a lowercase hyphenated string.

    ``unix_ms`` and ``random`` are injectable for deterministic tests.
    """
    ms = time.time_ns() // 1_000_000 if unix_ms is None else unix_ms
    if not 0 <= ms < 1 << 48:
        raise InvalidArgument("timestamp out of UUIDv7 range")
    rand = int.from_bytes(random(10), "big")
    rand_a = (rand >> 68) & 0xFFF
    rand_b = rand & ((1 << 62) - 1)
    value = (ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    return str(uuid.UUID(int=value))


def check_uuid7(value: str, field: str = "packet_id") -> str:
    """Return ``value`` if it is a canonical UUIDv7 string, else raise :class:`FormatError`."""
    if not _UUID7.fullmatch(value):
        raise FormatError(f"{field} is not a lowercase UUIDv7")
    return value


def check_actor_id(value: str, field: str = "id") -> str:
    """Return ``value`` if it is a valid liaison/channel id, else raise :class:`FormatError`."""
    if not _ACTOR_ID.fullmatch(value):
        raise FormatError(f"{field} {value!r} is not a valid id")
    return value


def require_actor_id(value: str, field: str = "id") -> str:
    """Like :func:`check_actor_id` but for caller input: raises :class:`InvalidArgument`."""
    try:
        return check_actor_id(value, field)
    except FormatError as exc:
        raise InvalidArgument(str(exc)) from None


def format_time(moment: datetime | None = None) -> str:
    """Format ``moment`` (default: now) as RFC 3339 UTC, whole seconds, ``Z`` suffix."""
    when = datetime.now(UTC) if moment is None else moment
    if when.tzinfo is None:
        raise InvalidArgument("naive datetime: pass an aware UTC time")
    return when.astimezone(UTC).strftime(_TIME_FORMAT)


def check_time(value: str, field: str = "time") -> str:
    """Return ``value`` if it is a valid RFC 3339 UTC time as we format it, else raise."""
    if not _RFC3339.fullmatch(value):
        raise FormatError(f"{field} is not RFC 3339 UTC (YYYY-MM-DDTHH:MM:SSZ)")
    try:
        datetime.strptime(value, _TIME_FORMAT)
    except ValueError as exc:
        raise FormatError(f"{field} is not a valid date-time") from exc
    return value
