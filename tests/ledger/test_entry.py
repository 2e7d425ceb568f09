"""Entry encoding: canonical bytes, strict parsing, and the verifier's fast check."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import fields
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger import (
    GENESIS_PREV,
    Actor,
    Entry,
    EntryDraft,
    EntryFormatError,
    encode_entry,
    format_time,
    parse_entry,
)
from ledger.format.checker import EntryChecker, check_entry
from ledger.format.entry import MAX_SAFE_INT
from ledger.format.field import ENTRY_FIELDS, OPTIONAL_FIELDS, REQUIRED_FIELDS

PREV = hashlib.sha256(b"previous").digest()
EXAMPLE = EntryDraft(
    time=datetime(2026, 11, 22, 5, 54, 0, 123456, tzinfo=UTC),
    actor=Actor(liaison="0190f3a2-7c1e-7d2b-9a4f-3c2e1b0a9d8e", key="k-2026-01"),
    action="packet.retrieve",
    subject={"type": "packet", "id": "0190f3a2-7c1e-7d2b-9a4f-000000000007"},
    outcome="granted",
    details={"channel": "mx-co-bilateral"},
)
EXAMPLE_BYTES = (
    b'{"action":"packet.retrieve","actor":{"key":"k-2026-01",'
    b'"liaison":"0190f3a2-7c1e-7d2b-9a4f-3c2e1b0a9d8e"},"details":{"channel":"mx-co-bilateral"},'
    b'"index":7,"outcome":"granted","prev":"' + PREV.hex().encode() + b'",'
    b'"subject":{"id":"0190f3a2-7c1e-7d2b-9a4f-000000000007","type":"packet"},'
    b'"time":"2026-11-22T05:54:00.123456Z"}'
)

names = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True)
texts = st.text(min_size=1, max_size=20)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-MAX_SAFE_INT, MAX_SAFE_INT) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(names, inner, max_size=3),
    max_leaves=8,
)
drafts = st.builds(
    EntryDraft,
    time=st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9998, 1, 1),
                      timezones=st.just(UTC)),
    actor=st.none() | st.builds(Actor, liaison=texts, key=texts),
    action=st.from_regex(r"[a-z][a-z0-9_]{0,8}(\.[a-z][a-z0-9_]{0,8}){0,2}", fullmatch=True),
    subject=st.dictionaries(names, texts, min_size=1, max_size=3),
    outcome=st.just("granted"),
    details=st.dictionaries(names, json_values, max_size=4),
    signature=st.none() | st.binary(min_size=1, max_size=80).map(
        lambda b: base64.b64encode(b).decode()),
).flatmap(lambda d: st.sampled_from([d, EntryDraft(**{**d.__dict__, "outcome": "denied",
                                                       "reason": "clearance lapsed"})]))


def test_example_entry_encodes_to_the_documented_bytes() -> None:
    assert encode_entry(EXAMPLE, 7, PREV) == EXAMPLE_BYTES


def test_first_entry_links_to_64_zeros() -> None:
    raw = encode_entry(EXAMPLE, 0, GENESIS_PREV)
    assert b'"prev":"' + b"0" * 64 + b'"' in raw
    assert parse_entry(raw).prev == GENESIS_PREV


def test_parsed_entry_carries_its_bytes_and_leaf_hash() -> None:
    entry = parse_entry(EXAMPLE_BYTES)
    assert entry.raw == EXAMPLE_BYTES
    assert entry.leaf_hash == hashlib.sha256(b"\x00" + EXAMPLE_BYTES).digest()
    assert (entry.index, entry.prev, entry.actor) == (7, PREV, EXAMPLE.actor)


@given(draft=drafts, index=st.integers(1, 2**63 - 1))
def test_encoding_round_trips(draft: EntryDraft, index: int) -> None:
    raw = encode_entry(draft, index, PREV)
    entry = parse_entry(raw)
    assert (entry.time, entry.actor, entry.action, dict(entry.subject), entry.outcome,
            entry.reason, dict(entry.details), entry.signature, entry.prev, entry.index) == (
        draft.time, draft.actor, draft.action, dict(draft.subject), draft.outcome,
        draft.reason, dict(draft.details), draft.signature, PREV, index)
    assert check_entry(raw) == (index, PREV)


def test_non_utc_times_are_stored_in_utc() -> None:
    plus2 = datetime(2026, 1, 1, 2, 0, tzinfo=timezone(timedelta(hours=2)))
    draft = EntryDraft(**{**EXAMPLE.__dict__, "time": plus2})
    assert b'"time":"2026-01-01T00:00:00.000000Z"' in encode_entry(draft, 1, PREV)


@pytest.mark.parametrize("change", [
    {"time": datetime(2026, 1, 1)},                     # naive time
    {"action": "Packet.Submit"},                        # not a dotted lowercase name
    {"subject": {}},                                    # empty subject
    {"subject": {"Type": "packet"}},                    # key not snake_case
    {"outcome": "denied"},                              # denied needs a reason
    {"reason": "why"},                                  # a reason needs denied
    {"details": {"ratio": 0.5}},                        # floats are refused
    {"details": {"big": 2**53}},                        # outside the I-JSON range
    {"details": {"nan": float("nan")}},
    {"signature": "not base64!"},
    {"actor": Actor(liaison="", key="k")},
])
def test_invalid_drafts_are_refused(change: dict[str, Any]) -> None:
    with pytest.raises(EntryFormatError):
        encode_entry(EntryDraft(**{**EXAMPLE.__dict__, **change}), 1, PREV)


def test_prev_must_be_zeros_exactly_for_the_first_entry() -> None:
    with pytest.raises(EntryFormatError):
        encode_entry(EXAMPLE, 0, PREV)
    with pytest.raises(EntryFormatError):
        encode_entry(EXAMPLE, 1, GENESIS_PREV)


def _swap(old: bytes, new: bytes) -> bytes:
    assert old in EXAMPLE_BYTES
    return EXAMPLE_BYTES.replace(old, new, 1)


MALFORMED = {
    "unknown field": _swap(b'"index":7', b'"extra":1,"index":7'),
    "missing field": _swap(b'"outcome":"granted",', b""),
    "index as string": _swap(b'"index":7', b'"index":"7"'),
    "index as bool": _swap(b'"index":7', b'"index":true'),
    "negative index": _swap(b'"index":7', b'"index":-7'),
    "float index": _swap(b'"index":7', b'"index":7.0'),
    "exponent index": _swap(b'"index":7', b'"index":7e0'),
    "float detail": _swap(b'"mx-co-bilateral"', b"1.5"),
    "NaN detail": _swap(b'"mx-co-bilateral"', b"NaN"),
    "leading zero": _swap(b'"index":7', b'"index":07'),
    "duplicate key": _swap(b'"index":7', b'"index":7,"index":7'),
    "duplicate nested key": _swap(b'"type":"packet"', b'"type":"packet","type":"packet"'),
    "space after colon": _swap(b'"index":7', b'"index": 7'),
    "trailing newline": EXAMPLE_BYTES + b"\n",
    "leading BOM": b"\xef\xbb\xbf" + EXAMPLE_BYTES,
    "keys out of order": _swap(b'{"id":"0190f3a2-7c1e-7d2b-9a4f-000000000007","type":"packet"}',
                               b'{"type":"packet","id":"0190f3a2-7c1e-7d2b-9a4f-000000000007"}'),
    "needless escape": _swap(b'"packet"}', b'"p\\u0061cket"}'),
    "escaped slash": _swap(b'"mx-co-bilateral"', b'"mx\\/co"'),
    "uppercase escape": _swap(b'"mx-co-bilateral"', b'"mx\\u001F"'),
    "raw control char": _swap(b'"mx-co-bilateral"', b'"mx\x01"'),
    "lone surrogate": _swap(b'"mx-co-bilateral"', b'"\\ud800"'),
    "invalid UTF-8": _swap(b'"mx-co-bilateral"', b'"mx\xff"'),
    "overlong UTF-8": _swap(b'"mx-co-bilateral"', b'"mx\xc0\xaf"'),
    "UTF-8 surrogate": _swap(b'"mx-co-bilateral"', b'"mx\xed\xa0\x80"'),
    "ASCII escaped": _swap(b'"mx-co-bilateral"', b'"\\u00e9"'),
    "time without micros": _swap(b"05:54:00.123456Z", b"05:54:00Z"),
    "time with offset": _swap(b"05:54:00.123456Z", b"05:54:00.123456+00:00"),
    "impossible date": _swap(b"2026-11-22", b"2026-02-30"),
    "lowercase z": _swap(b"05:54:00.123456Z", b"05:54:00.123456z"),
    "uppercase prev": _swap(PREV.hex().encode(), PREV.hex().upper().encode()),
    "short prev": _swap(PREV.hex().encode(), PREV.hex()[:62].encode()),
    "unknown outcome": _swap(b'"granted"', b'"allowed"'),
    "denied without reason": _swap(b'"granted"', b'"denied"'),
    "empty details": _swap(b'{"channel":"mx-co-bilateral"}', b"{}"),
    "details not an object": _swap(b'{"channel":"mx-co-bilateral"}', b"[1]"),
    "system actor misspelt": _swap(
        b'{"key":"k-2026-01","liaison":"0190f3a2-7c1e-7d2b-9a4f-3c2e1b0a9d8e"}', b'"System"'),
    "actor with extra key": _swap(b'{"key":"k-2026-01",', b'{"id":"x","key":"k-2026-01",'),
    "empty subject value": _swap(b'"type":"packet"', b'"type":""'),
    "top level array": b"[" + EXAMPLE_BYTES + b"]",
    "not JSON": b"{index:7}",
    "empty": b"",
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_strict_parsing_refuses(data: bytes) -> None:
    with pytest.raises(EntryFormatError):
        parse_entry(data)
    with pytest.raises(EntryFormatError):
        check_entry(data)


def test_oversized_entries_are_refused() -> None:
    big = EntryDraft(**{**EXAMPLE.__dict__, "details": {"blob": "x" * 70_000}})
    with pytest.raises(EntryFormatError):
        encode_entry(big, 1, PREV)


def test_nesting_is_bounded() -> None:
    nested: Any = "leaf"
    for _ in range(12):
        nested = {"a": nested}
    with pytest.raises(EntryFormatError):
        encode_entry(EntryDraft(**{**EXAMPLE.__dict__, "details": nested}), 1, PREV)


@given(draft=drafts, index=st.integers(1, 10**6))
def test_fast_check_agrees_with_the_strict_parser_on_valid_entries(
        draft: EntryDraft, index: int) -> None:
    raw = encode_entry(draft, index, PREV)
    assert EntryChecker().check(raw) == (index, PREV.hex().encode())


@given(draft=drafts, data=st.data())
def test_fast_check_never_accepts_what_the_strict_parser_refuses(
        draft: EntryDraft, data: st.DataObject) -> None:
    raw = bytearray(encode_entry(draft, 5, PREV))
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        pos = data.draw(st.integers(0, len(raw) - 1), label="position")
        raw[pos] = data.draw(st.sampled_from(b'"\\{}:,0a \x00\x7f\xc3\xa9A9-.'), label="byte")
    try:
        strict = parse_entry(bytes(raw))
    except EntryFormatError:
        with pytest.raises(EntryFormatError):
            EntryChecker().check(bytes(raw))
        return
    assert EntryChecker().check(bytes(raw)) == (strict.index, strict.prev.hex().encode())


def test_common_shape_takes_the_fast_path() -> None:
    # The regular expression alone accepts it: no JSON parse is needed.
    from ledger.format.checker import _FAST
    assert _FAST.fullmatch(EXAMPLE_BYTES) is not None
    assert json.loads(EXAMPLE_BYTES)["index"] == 7


# -- the fast encoder against a naive reference --------------------------------


def reference_encode(draft: EntryDraft, index: int, prev: bytes) -> bytes:
    """The obvious encoder: build the object, dump it canonically, parse it strictly."""
    if len(prev) != 32 or (index == 0) != (prev == GENESIS_PREV):
        raise EntryFormatError("bad prev")
    if draft.time.utcoffset() is None:
        raise EntryFormatError("naive time")
    try:
        t = draft.time.astimezone(UTC)
    except OverflowError as exc:
        raise EntryFormatError("time out of range") from exc
    obj: dict[str, Any] = {
        "action": draft.action,
        "actor": "system" if draft.actor is None else {
            "key": draft.actor.key, "liaison": draft.actor.liaison},
        "index": index, "outcome": draft.outcome, "prev": prev.hex(),
        "subject": dict(draft.subject),
        "time": f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:"
                f"{t.second:02d}.{t.microsecond:06d}Z",
    }
    for name in ("reason", "signature"):
        if getattr(draft, name) is not None:
            obj[name] = getattr(draft, name)
    if draft.details:
        obj["details"] = dict(draft.details)
    try:
        raw = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                         allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise EntryFormatError(str(exc)) from exc
    parse_entry(raw)
    return raw


odd_texts = st.text(max_size=12) | st.sampled_from(["", "\ud800", "a\"b\\c", "\x00\x1f\x7f", "é—✓"])
odd_names = names | odd_texts
odd_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**60, 2**60) | odd_texts
    | st.floats(allow_nan=True) | st.sampled_from([2**53 - 1, -(2**53) + 1, 2**53, -(2**53)]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(odd_names, inner, max_size=3),
    max_leaves=12,
)
deep: Any = "leaf"
for _ in range(9):
    deep = {"a": deep}
odd_drafts = st.builds(
    EntryDraft,
    time=st.datetimes(timezones=st.none() | st.just(UTC) | st.timezones()),
    actor=st.none() | st.builds(Actor, liaison=odd_texts, key=odd_texts),
    action=st.from_regex(r"[a-z][a-z0-9_]{0,5}(\.[a-z0-9_]{0,3}){0,2}", fullmatch=True)
    | odd_texts,
    subject=st.dictionaries(odd_names, odd_texts, max_size=3),
    outcome=st.sampled_from(["granted", "denied", "allowed"]),
    reason=st.none() | odd_texts,
    details=st.dictionaries(odd_names, odd_values, max_size=4) | st.just({"d": deep}),
    signature=st.none() | odd_texts | st.binary(max_size=40).map(
        lambda b: base64.b64encode(b).decode()) | st.sampled_from(["QQ==", "QR==", "QUI=", "QUJ="]),
)


@given(draft=drafts, index=st.integers(1, 2**63 - 1))
def test_fast_encoder_gives_the_reference_bytes(draft: EntryDraft, index: int) -> None:
    raw = encode_entry(draft, index, PREV, strict=True)
    assert raw == reference_encode(draft, index, PREV)


@given(draft=odd_drafts, index=st.integers(-1, 2**63), genesis=st.booleans())
def test_fast_encoder_refuses_exactly_what_the_reference_refuses(
        draft: EntryDraft, index: int, genesis: bool) -> None:
    prev = GENESIS_PREV if genesis else PREV
    try:
        expected: bytes | None = reference_encode(draft, index, prev)
    except EntryFormatError:
        expected = None
    try:
        got: bytes | None = encode_entry(draft, index, prev, strict=True)
    except EntryFormatError:
        got = None
    assert got == expected


def test_strict_encoding_catches_an_encoder_that_does_not_round_trip(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from ledger.format import encoder
    monkeypatch.setattr(encoder, "_QUOTE", lambda text: json.dumps(text))  # ASCII escapes
    odd = EntryDraft(**{**EXAMPLE.__dict__, "subject": {"id": "é", "type": "packet"}})
    encode_entry(odd, 7, PREV)  # the fast path trusts its own code...
    with pytest.raises(EntryFormatError):
        encode_entry(odd, 7, PREV, strict=True)  # ...the strict one checks it


@given(moment=st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 1, 1),
                           timezones=st.timezones()))
def test_time_is_formatted_as_its_utc_instant(moment: datetime) -> None:
    utc = moment.astimezone(UTC).replace(tzinfo=None)  # (strftime does not pad years < 1000)
    assert format_time(moment) == utc.isoformat(timespec="microseconds") + "Z"


# -- the verifier's batch check ---------------------------------------------------


@given(batch=st.lists(st.tuples(drafts, st.integers(1, 10**12)), min_size=1, max_size=8))
def test_batch_check_reads_what_the_strict_parser_reads(
        batch: list[tuple[EntryDraft, int]]) -> None:
    raws = [encode_entry(draft, index, PREV) for draft, index in batch]
    fields = EntryChecker().check_batch(raws)
    if fields is None:  # not the common shape: the per-entry scan takes it
        assert all(EntryChecker().check(raw) == (i, PREV.hex().encode())
                   for raw, (_, i) in zip(raws, batch, strict=True))
        return
    indices, prevs = fields
    assert [int(i) for i in indices] == [index for _, index in batch]
    assert set(prevs) == {PREV.hex().encode()}


@given(draft=drafts, data=st.data())
def test_batch_check_never_accepts_what_the_strict_parser_refuses(
        draft: EntryDraft, data: st.DataObject) -> None:
    raw = bytearray(encode_entry(draft, 5, PREV))
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        pos = data.draw(st.integers(0, len(raw) - 1), label="position")
        raw[pos] = data.draw(st.sampled_from(b'"\\{}:,0aA=+/ \x00\x7f\xc3\xa9-.'), label="byte")
    fields = EntryChecker().check_batch([bytes(raw)])
    if fields is None:
        return
    (index,), (prev,) = fields
    if prev != PREV.hex().encode():
        return  # the verifier compares prev with the hash it expects, and replays
    strict = parse_entry(bytes(raw))  # must not raise
    assert (strict.index, strict.prev) == (int(index), PREV)


@given(drafts=st.lists(drafts, min_size=2, max_size=6), data=st.data())
def test_batch_check_never_accepts_a_bad_entry_among_good_ones(
        drafts: list[EntryDraft], data: st.DataObject) -> None:
    # The batch is matched line by line in one findall: a bad line must not
    # hide behind a good one, nor a match spill from one line into the next.
    raws = [encode_entry(draft, n + 1, PREV) for n, draft in enumerate(drafts)]
    bad = data.draw(st.integers(0, len(raws) - 1), label="entry")
    raw = bytearray(raws[bad])
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        pos = data.draw(st.integers(0, len(raw) - 1), label="position")
        raw[pos] = data.draw(st.sampled_from(b'"{}:,0aA= \x00\n\xc3-'), label="byte")
    raws[bad] = bytes(raw)
    fields = EntryChecker().check_batch(raws)
    if fields is None:
        return
    indices, prevs = fields
    assert len(indices) == len(prevs) == len(raws)
    if prevs[bad] != PREV.hex().encode():
        return  # the verifier compares prev with the hash it expects, and replays
    strict = parse_entry(raws[bad])  # must not raise
    assert (strict.index, strict.prev) == (int(indices[bad]), PREV)


def test_common_shapes_take_the_batch_path() -> None:
    from tests.ledger.helpers import draft as ledger_draft
    raws = [encode_entry(ledger_draft(n, denied=n % 5 == 0), n + 1, PREV) for n in range(50)]
    raws.append(encode_entry(EntryDraft(**{**EXAMPLE.__dict__, "signature": "QUJD"}), 9, PREV))
    fields = EntryChecker().check_batch(raws)
    assert fields is not None
    assert [int(i) for i in fields[0]] == [*range(1, 51), 9]


@pytest.mark.parametrize("change", [
    {"subject": {"id": 'say "hi"', "type": "packet"}},      # an escape
    {"details": {"note": "señal"}},                          # fine: non-ASCII, no escape
    {"details": {"b": 1, "a": 2}},                           # sorted on encoding anyway
    {"details": {"a": {"nested": 1}}},                       # not flat
    {"subject": {"id": "p", "kind": "x", "type": "packet"}},  # three subject fields
])
def test_uncommon_shapes_still_check_through_the_scan(change: dict[str, Any]) -> None:
    raw = encode_entry(EntryDraft(**{**EXAMPLE.__dict__, **change}), 7, PREV)
    assert EntryChecker().check(raw) == (7, PREV.hex().encode())


def test_entry_fields_are_the_one_definition_of_the_members() -> None:
    """The parser's, the encoder's and the checker's field lists all come from ENTRY_FIELDS."""
    names = [entry_field.name for entry_field in ENTRY_FIELDS]
    assert names == sorted(names)
    assert REQUIRED_FIELDS | OPTIONAL_FIELDS == set(names)
    assert set(names) <= {f.name for f in fields(Entry)}
    assert set(names) - {"index", "prev"} == {f.name for f in fields(EntryDraft)}
