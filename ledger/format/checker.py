"""Fast checks of stored entry bytes, for the verifier's pass over a whole ledger.

:func:`ledger.format.entry.parse_entry` is the definition of a canonical entry, but
it decodes and re-encodes JSON: far too slow for a million entries. So
:meth:`EntryChecker.check_batch` checks a whole batch of entries at once,
with no Python code per entry: one scan of the batch for escapes and control
bytes, one ``findall`` over the batch joined by newlines of a regular
expression that matches only whole lines holding canonical entries of the
common shape (no string escapes, subject ``{"id", "type"}``, at most three
flat detail fields), and checks a regular expression cannot
make (detail keys in order, a real calendar day, canonical base64) run once
per distinct value or as C-level maps. The verifier uses it batch by batch
and replays any batch it refuses entry by entry through :meth:`EntryChecker.scan`,
which tries the same fast check and falls back to the strict parser. Both
paths accept exactly the same entries with the same index and ``prev``
(property tests in ``tests/ledger/test_entry.py`` hold them together).
"""

from __future__ import annotations

import binascii
import itertools
import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import date
from functools import partial
from operator import itemgetter, methodcaller

from ledger.format.entry import parse_entry
from ledger.format.field import (
    ACTION_PATTERN,
    CLOCK_PATTERN,
    DATE_PATTERN,
    ENTRY_FIELDS,
    HEX64_PATTERN,
    MAX_ENTRY_BYTES,
    NAME_PATTERN,
)

__all__ = ["EntryChecker", "check_entry"]

# The batch is refused up front if it holds a backslash or a control byte
# anywhere, so every '"' in it delimits a string, every string is free of
# escapes, and a string is just '"[^"]*"': a single-byte exclusion, which
# Python's regex engine scans several times faster than a character class.
# For the same reason the fields that vary most (prev, signature) and the
# names (action, detail keys) are captured loosely here and checked apart:
# prev by the caller's comparison with a known hash, signatures by a base64
# round trip, names once per distinct value.
_STR = rb'"[^"]++"'
_VALUE = rb'(?:"[^"]*+"|true|false|null|0|-?[1-9][0-9]{0,14})'


def _key(name: bytes) -> bytes:
    return rb'"(?P<' + name + rb'>[^"]++)":'


# Up to three detail fields; their key order is checked on the captured keys.
_DETAILS = (rb'\{' + _key(b"k1") + _VALUE + rb'(?:,' + _key(b"k2") + _VALUE
            + rb'(?:,' + _key(b"k3") + _VALUE + rb')?)?\}')
# The value of each field of ENTRY_FIELDS in the common shape, keyed by name.
_VALUES = {
    "action": rb'"(?P<action>[^"]++)"',
    "actor": rb'(?:"system"|\{"key":' + _STR + rb',"liaison":' + _STR + rb'\})',
    "details": _DETAILS,
    "index": rb'(?P<index>0|[1-9][0-9]{0,17})',
    "outcome": rb'"(?:granted|(?P<denied>denied))"',
    "prev": rb'"(?P<prev>[^"]{64})"',
    "reason": _STR,
    "signature": rb'"(?P<sig>[^"]++)"',
    "subject": rb'\{"id":' + _STR + rb',"type":' + _STR + rb'\}',
    "time": rb'"(?P<day>' + DATE_PATTERN.encode() + rb')' + CLOCK_PATTERN.encode() + rb'"',
}


def _entry_pattern() -> bytes:
    """The members of :data:`ENTRY_FIELDS` in order, each as its presence says.

    A ``denied`` member (the reason) is a conditional group on the outcome's
    ``denied`` group, which precedes it in canonical order.
    """
    if _VALUES.keys() != {entry_field.name for entry_field in ENTRY_FIELDS}:
        raise RuntimeError("the checker needs a pattern for every entry field, and no other")
    members = []
    for entry_field in ENTRY_FIELDS:
        member = b'"' + entry_field.name.encode() + b'":' + _VALUES[entry_field.name] + b","
        if entry_field.presence == "optional":
            member = b"(?:" + member + b")?"
        elif entry_field.presence == "denied":
            member = b"(?(denied)" + member + b")"
        members.append(member)
    return rb"\{" + b"".join(members)[:-1] + rb"\}"  # the last field is required


_FAST = re.compile(_entry_pattern())
# By number: looking groups up by name costs more than the regular expression.
_NAMES = ("index", "prev", "action", "k1", "k2", "k3", "sig", "day")
_FIELDS = methodcaller("group", *[_FAST.groupindex[name] for name in _NAMES])
# The same entry, once per line of a batch joined by b"\n". ``^`` and ``$``
# (multiline) pin every match to a whole line: the batch holds no newline but
# the separators (it is refused first if it holds any control byte), so a
# match starts at a line start and, never crossing a separator when every line
# start begins a match, ends at the next one. So N matches for N lines mean
# every line matched whole, and ``findall`` gives the groups as tuples, with
# no match object per entry (absent groups as b"", never a valid value here).
_LINES = re.compile(rb"(?m)^" + _FAST.pattern + rb"$")
_INDEX, _PREV, _SIG = (itemgetter(_LINES.groupindex[name] - 1) for name in ("index", "prev", "sig"))
_SHARED = itemgetter(*[_LINES.groupindex[name] - 1 for name in ("action", "k1", "k2", "k3", "day")])
_FORBIDDEN = bytes(range(0x20)) + b"\\"
_ACTION_BYTES = re.compile(ACTION_PATTERN.pattern.encode())
_NAME_BYTES = re.compile(NAME_PATTERN.pattern.encode())
_HEX64_BYTES = re.compile(HEX64_PATTERN.pattern.encode())
_ZEROS = b"0" * 64
_b64decode = binascii.a2b_base64
_b64encode = partial(binascii.b2a_base64, newline=False)


def _valid_day(day: bytes) -> bool:
    try:
        date.fromisoformat(day.decode("ascii"))
    except ValueError:
        return False
    return True


def _utf8(data: bytes) -> bool:
    if data.isascii():
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _ordered_names(keys: tuple[bytes | None, ...]) -> bool:
    """Detail keys: snake_case and strictly ascending (canonical order, no duplicates)."""
    names = [key for key in keys if key]  # absent: None from a match, b"" from findall
    return all(_NAME_BYTES.fullmatch(key) for key in names) and \
        all(a < b for a, b in itertools.pairwise(names))


def _canonical_base64(signatures: list[bytes]) -> bool:
    """Each is the one canonical encoding of its bytes (RFC 4648 §3.5: padded, zero pad bits)."""
    try:
        return list(map(_b64encode, map(_b64decode, signatures))) == signatures
    except binascii.Error:
        return False


class EntryChecker:
    """Checks entry bytes quickly; remembers the calendar days it has seen valid."""

    def __init__(self) -> None:
        """Start with no day seen."""
        self._days: set[bytes] = set()

    def check(self, data: bytes) -> tuple[int, bytes]:
        """Return ``(index, prev as lowercase hex ASCII)``; raise :class:`EntryFormatError`."""
        _, index, prev = next(self.scan((data,)))
        return index, prev

    def scan(self, entries: Iterable[bytes]) -> Iterator[tuple[bytes, int, bytes]]:
        """Yield ``(bytes, index, prev hex)`` per entry; raise at the first bad one."""
        fullmatch = _FAST.fullmatch
        for data in entries:
            m = None
            if len(data) <= MAX_ENTRY_BYTES and \
                    len(data.translate(None, _FORBIDDEN)) == len(data) and _utf8(data):
                m = fullmatch(data)
            if m is not None:
                index, prev, action, k1, k2, k3, sig, day = _FIELDS(m)
                if (_HEX64_BYTES.fullmatch(prev) and (index == b"0") == (prev == _ZEROS)
                        and _ACTION_BYTES.fullmatch(action) and _ordered_names((k1, k2, k3))
                        and (sig is None or _canonical_base64([sig]))
                        and self._good_days((day,))):
                    yield data, int(index), prev
                    continue
            entry = parse_entry(data)
            yield data, entry.index, entry.prev.hex().encode("ascii")

    def check_batch(
        self, entries: Sequence[bytes]
    ) -> tuple[tuple[bytes, ...], tuple[bytes, ...]] | None:
        """The index digits and ``prev`` text of every entry, if all take the fast path.

        ``None`` means some entry needs :meth:`scan` (it may still be valid).
        Every step is a C-level map, join or set over the batch; the checks
        the regular expression cannot make run once per distinct value
        (actions, detail keys, days) or as C-level maps (signatures).

        ``prev`` is only known to be 64 bytes here: the caller must compare it
        with the expected lowercase hex (which makes it valid, and settles it
        being zeros exactly for index 0). With that, an accepted entry is one
        :func:`~ledger.format.entry.parse_entry` accepts, with the same index and prev.
        """
        if not entries:
            return (), ()
        if max(map(len, entries)) > MAX_ENTRY_BYTES:
            return None
        lines = b"\n".join(entries)
        # No escape and no control byte but the len(entries) - 1 separators
        # (which the translation drops too): otherwise not the fast path.
        if len(lines.translate(None, _FORBIDDEN)) != len(lines) - len(entries) + 1:
            return None
        # Each entry starts and ends with an ASCII byte once matched below, so
        # the batch is valid UTF-8 exactly when every entry is.
        if not _utf8(lines):
            return None
        found = _LINES.findall(lines)
        del lines
        if len(found) != len(entries):
            return None  # some line did not match whole
        # The names and days, checked once per distinct combination (a handful).
        for action, k1, k2, k3, day in set(map(_SHARED, found)):
            if not (_ACTION_BYTES.fullmatch(action) and _ordered_names((k1, k2, k3))
                    and self._good_days((day,))):
                return None
        if not _canonical_base64(list(filter(None, map(_SIG, found)))):
            return None
        return tuple(map(_INDEX, found)), tuple(map(_PREV, found))

    def _good_days(self, days: Iterable[bytes]) -> bool:
        known = self._days
        for day in days:
            if day not in known:
                if not _valid_day(day):
                    return False
                if len(known) > 10_000:  # a bound on memory, never reached in practice
                    known.clear()
                known.add(day)
        return True


def check_entry(data: bytes) -> tuple[int, bytes]:
    """Return ``(index, prev)`` of canonical entry bytes or raise :class:`EntryFormatError`."""
    index, prev = EntryChecker().check(data)
    return index, bytes.fromhex(prev.decode("ascii"))
