"""Fuzzing the parsers: only the declared error types ever escape.

Every parser that reads bytes from outside (checkpoints and signed notes,
ledger entries, tlog-proofs, packet envelopes and headers, receipts, key
shares, statements, custody certificate bundles and tlog-policies) is fed
random input, random JSON, and mutations of a valid instance (bit flips,
truncations, insertions, spliced bytes). Each either parses or raises its
module's declared error (``ledger.errors.LedgerError``,
``crypto.errors.CryptoError``); never a ``KeyError``, ``TypeError``,
``RecursionError``, ``UnicodeDecodeError`` or the like.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from crypto import (
    Classification,
    CryptoError,
    Envelope,
    HandlingCode,
    KeyShare,
    LiaisonKeys,
    PacketHeader,
    PacketMeta,
    Receipt,
    Statement,
    seal_packet,
)
from custody import parse_bundle, parse_policy
from ledger import (
    Actor,
    Checkpoint,
    EntryDraft,
    LedgerError,
    NoteSigner,
    NoteVerifier,
    encode_entry,
    open_checkpoint,
    parse_checkpoint_body,
    parse_entry,
    parse_note,
    parse_tlog_proof,
    sign_checkpoint,
)

ORIGIN = "fuzz.cadena/ledger"
FUZZ = settings(max_examples=100, deadline=None)


def _only_declared(parse: Callable[[Any], object], data: Any,
                   declared: type[Exception]) -> None:
    try:
        parse(data)
    except declared:
        pass


def _mutations(valid: bytes) -> st.SearchStrategy[bytes]:
    """Valid bytes, damaged: a flipped bit, a cut, an insertion, a spliced slice."""
    size = len(valid)
    flip = st.tuples(st.integers(0, size - 1), st.integers(0, 7)).map(
        lambda p: valid[:p[0]] + bytes([valid[p[0]] ^ (1 << p[1])]) + valid[p[0] + 1:])
    cut = st.integers(0, size).map(lambda n: valid[:n])
    insert = st.tuples(st.integers(0, size), st.binary(min_size=1, max_size=8)).map(
        lambda p: valid[:p[0]] + p[1] + valid[p[0]:])
    splice = st.tuples(st.integers(0, size), st.integers(0, size)).map(
        lambda p: valid[:min(p)] + valid[max(p):] + valid[min(p):max(p)])
    return st.one_of(flip, cut, insert, splice)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)


def _json_bytes(keys: list[str]) -> st.SearchStrategy[bytes]:
    """JSON objects that use the parser's own field names with random values."""
    objects = st.dictionaries(st.sampled_from(keys) | st.text(max_size=6), JSON_VALUES,
                              max_size=len(keys) + 1)
    return objects.map(lambda o: json.dumps(o, sort_keys=True, separators=(",", ":"),
                                            ensure_ascii=False).encode("utf-8", "surrogatepass"))


# -- valid instances to mutate --------------------------------------------------------


NOTE_SIGNER = NoteSigner(ORIGIN, SigningKey.generate())
VERIFIER = NoteVerifier.from_string(NOTE_SIGNER.verifier_key())
NOTE = sign_checkpoint(Checkpoint(ORIGIN, 42, bytes(range(32))), NOTE_SIGNER)
ENTRY = encode_entry(EntryDraft(
    time=datetime(2026, 11, 22, 8, 0, tzinfo=UTC), actor=Actor("alice", "a" * 32),
    action="packet.submit", subject={"type": "packet", "id": "p-1"}, outcome="granted",
    details={"channel": "ch", "streams": 3}, signature="c2ln"), 0, bytes(32))
_ALICE, _BOB = LiaisonKeys.generate(), LiaisonKeys.generate()
SEALED = seal_packet(_ALICE, "alice", {"bob": _BOB.public},
                     PacketMeta("ch", Classification("SECRET"), HandlingCode("H2"), "B2"),
                     b"fuzz", {"a.txt": b"x"}, chunk_size=64)
ENVELOPE = SEALED.envelope.to_bytes()
HEADER = SEALED.envelope.header


class TestCheckpointParser:
    """Signed notes and checkpoint bodies raise only ``LedgerError``."""

    @FUZZ
    @given(st.text(max_size=300))
    def test_random_text(self, text: str) -> None:
        _only_declared(parse_note, text, LedgerError)
        _only_declared(parse_checkpoint_body, text, LedgerError)
        _only_declared(lambda t: open_checkpoint(t, VERIFIER), text, LedgerError)
        _only_declared(NoteVerifier.from_string, text, LedgerError)

    @FUZZ
    @given(_mutations(NOTE.encode()))
    def test_mutated_checkpoint(self, data: bytes) -> None:
        text = data.decode("utf-8", "replace")
        _only_declared(lambda t: open_checkpoint(t, VERIFIER), text, LedgerError)
        _only_declared(parse_note, text, LedgerError)

    @FUZZ
    @given(st.text(max_size=200))
    def test_random_tlog_proof(self, text: str) -> None:
        _only_declared(parse_tlog_proof, "c2sp.org/tlog-proof@v1\n" + text, LedgerError)
        _only_declared(parse_tlog_proof, text, LedgerError)


class TestEntryParser:
    """Ledger entry bytes raise only ``LedgerError``."""

    @FUZZ
    @given(st.binary(max_size=300))
    def test_random_bytes(self, data: bytes) -> None:
        _only_declared(parse_entry, data, LedgerError)

    @FUZZ
    @given(_mutations(ENTRY))
    def test_mutated_entry(self, data: bytes) -> None:
        _only_declared(parse_entry, data, LedgerError)

    @FUZZ
    @given(_json_bytes(["index", "time", "actor", "action", "subject", "outcome", "reason",
                        "details", "signature", "prev"]))
    def test_entry_shaped_json(self, data: bytes) -> None:
        _only_declared(parse_entry, data, LedgerError)

    def test_deep_nesting(self) -> None:
        _only_declared(parse_entry, b'{"details":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
                       LedgerError)


class TestEnvelopeParser:
    """Envelopes, headers, receipts, key shares and statements raise only ``CryptoError``."""

    PARSERS = (Envelope.from_bytes, PacketHeader.from_bytes, Receipt.from_bytes,
               KeyShare.from_bytes, Statement.from_bytes)

    @FUZZ
    @given(st.binary(max_size=300))
    def test_random_bytes(self, data: bytes) -> None:
        for parse in self.PARSERS:
            _only_declared(parse, data, CryptoError)

    @FUZZ
    @given(_mutations(ENVELOPE))
    def test_mutated_envelope(self, data: bytes) -> None:
        _only_declared(Envelope.from_bytes, data, CryptoError)

    @FUZZ
    @given(_mutations(HEADER))
    def test_mutated_header(self, data: bytes) -> None:
        _only_declared(PacketHeader.from_bytes, data, CryptoError)

    @FUZZ
    @given(_json_bytes(["v", "header", "signature", "wrapped_keys", "packet_id", "channel_id",
                        "recipients", "sender", "streams", "classification", "handling"]))
    def test_envelope_shaped_json(self, data: bytes) -> None:
        for parse in self.PARSERS:
            _only_declared(parse, data, CryptoError)

    def test_deep_nesting(self) -> None:
        for parse in self.PARSERS:
            _only_declared(parse, b'{"v":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
                           CryptoError)


class TestCertificateParser:
    """Custody certificate bundles and tlog-policies raise only ``LedgerError``."""

    @FUZZ
    @given(st.binary(max_size=300))
    def test_random_bundle_bytes(self, data: bytes) -> None:
        _only_declared(parse_bundle, data, LedgerError)

    @FUZZ
    @given(_json_bytes(["type", "certificate", "seal", "disclosure", "refresh"]))
    def test_bundle_shaped_json(self, data: bytes) -> None:
        _only_declared(parse_bundle, data, LedgerError)

    @FUZZ
    @given(st.text(max_size=300))
    def test_random_policy_text(self, text: str) -> None:
        _only_declared(parse_policy, text, LedgerError)
        _only_declared(parse_policy, "log " + text, LedgerError)
