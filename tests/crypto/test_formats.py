"""Strict formats: canonical JSON, headers, names, ids, PAE and the import boundary."""

from __future__ import annotations

import ast
import json
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crypto import (
    BadSignature,
    Envelope,
    FormatError,
    InvalidArgument,
    PacketHeader,
    PacketMeta,
    UnknownVersion,
    canonical_json,
    pae,
    parse_canonical,
    sign,
    uuid7,
    verify_header,
)
from crypto.signing import PACKET_HEADER_TYPE
from crypto.statement import check_attachment_name
from tests.crypto.conftest import META, SENDER, seal

PACKET = seal()
HEADER = PacketHeader.from_bytes(PACKET.envelope.header)


def test_header_round_trips_byte_for_byte() -> None:
    assert HEADER.to_bytes() == PACKET.envelope.header
    assert verify_header(PACKET.envelope.header, PACKET.envelope.signature,
                         SENDER.public) == HEADER


def test_unknown_header_version_is_refused() -> None:
    with pytest.raises(UnknownVersion):
        PacketHeader.from_bytes(PACKET.envelope.header.replace(b'"v":1', b'"v":2'))


@pytest.mark.parametrize("change", [
    {"extra": 1}, {"classification": "TOP SECRET"}, {"handling": "H4"}, {"evaluation": "D1"},
    {"chunk_size": 1.5}, {"recipients": []}, {"packet_id": str(uuid.uuid4())},
    {"created": "2025-03-14 15:09:26"}, {"streams": []},
])
def test_invalid_header_fields_are_format_errors(change: dict[str, object]) -> None:
    obj = json.loads(PACKET.envelope.header)
    obj.update(change)
    data = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    with pytest.raises(FormatError):
        PacketHeader.from_bytes(data)


def test_non_canonical_json_is_refused_even_when_validly_signed() -> None:
    spaced = json.dumps(json.loads(PACKET.envelope.header), sort_keys=True).encode()
    signature = sign(SENDER.signing_key, PACKET_HEADER_TYPE, spaced)
    with pytest.raises(FormatError):
        verify_header(spaced, signature, SENDER.public)


@pytest.mark.parametrize("data", [b'{"a":1,"a":2}', b'{"a":1.0}', b"[]", b'{"a":NaN}',
                                  b"\xff", b'{"b":1,"a":2}'])
def test_parse_canonical_refuses_ambiguous_json(data: bytes) -> None:
    with pytest.raises(FormatError):
        parse_canonical(data)


@given(st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=5))
def test_canonical_json_parses_back_to_itself(obj: dict[str, object]) -> None:
    assert parse_canonical(canonical_json(obj)) == obj


@pytest.mark.parametrize("name", ["", "../x", "a/b", "a\\b", "a\x00b", ".", "..", "a..b",
                                  " lead", "x" * 256, "e\u0301", "tab\t"])
def test_unsafe_attachment_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidArgument):
        check_attachment_name(name)


def test_unsafe_attachment_name_cannot_be_sealed() -> None:
    with pytest.raises(InvalidArgument):
        seal(attachments=[("../../etc/passwd", b"x")])


def test_duplicate_attachment_names_cannot_be_sealed() -> None:
    with pytest.raises(InvalidArgument):
        seal(attachments=[("a", b"x"), ("a", b"y")])


def test_invalid_meta_is_an_invalid_argument() -> None:
    with pytest.raises(InvalidArgument):
        replace(META, evaluation="Z9")
    with pytest.raises(InvalidArgument):
        PacketMeta("bad channel!", META.classification, META.handling, "A1")


@given(st.integers(0, 2**48 - 1), st.binary(min_size=10, max_size=10))
def test_uuid7_has_version_variant_and_time(ms: int, rand: bytes) -> None:
    value = uuid.UUID(uuid7(ms, lambda n: rand[:n]))
    assert value.version == 7
    assert value.variant == uuid.RFC_4122
    assert value.int >> 80 == ms


def test_uuid7_sorts_by_time() -> None:
    assert uuid7(1) < uuid7(2) < uuid7()


def test_pae_matches_dsse_spec_example() -> None:
    # DSSE protocol.md example: PAE("http://example.com/HelloWorld", "hello world")
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world")


def test_envelope_round_trips_and_refuses_bad_wrapped_key_lengths() -> None:
    data = PACKET.envelope.to_bytes()
    assert Envelope.from_bytes(data) == PACKET.envelope
    obj = json.loads(data)
    obj["wrapped_keys"]["r0"] = "AAAA"
    with pytest.raises(FormatError):
        Envelope.from_bytes(canonical_json(obj))


def test_header_signature_is_not_valid_for_another_payload_type() -> None:
    from crypto import verify_signature
    from crypto.signing import RECEIPT_TYPE

    with pytest.raises(BadSignature):
        verify_signature(SENDER.public.signing, RECEIPT_TYPE, PACKET.envelope.header,
                         PACKET.envelope.signature)


def test_crypto_imports_nothing_from_app_client_ledger_or_frameworks() -> None:
    forbidden = {"app", "client", "ledger", "witness", "streamio", "fastapi", "sqlalchemy",
                 "pydantic", "httpx",
                 "threading", "queue", "ctypes", "tempfile"}  # I/O and threads: streamio, client
    root = Path(__file__).resolve().parents[2] / "crypto"
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert name.split(".")[0] not in forbidden, f"{path.name} imports {name}"
