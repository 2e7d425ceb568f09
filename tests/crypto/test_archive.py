"""The operator's encrypted archive (crypto.archive): it round-trips, and nothing else opens it."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from hypothesis import given
from hypothesis import strategies as st
from nacl.bindings import crypto_scalarmult

from crypto import (
    CryptoError,
    LiaisonKeys,
    NotARecipient,
    decrypt_archive,
    encrypt_archive,
    is_encrypted_archive,
)

OPERATOR = LiaisonKeys.generate()
STRANGER = LiaisonKeys.generate()


def _sealed(data: bytes, chunk_size: int = 64) -> bytes:
    out = io.BytesIO()
    encrypt_archive(io.BytesIO(data), out, OPERATOR.public, chunk_size=chunk_size)
    return out.getvalue()


def _header_end(sealed: bytes) -> int:
    """Where the ciphertext starts: after the magic line and the header line."""
    return sealed.index(b"\n", sealed.index(b"\n") + 1) + 1


def _open(sealed: bytes, identity: LiaisonKeys = OPERATOR) -> bytes:
    out = io.BytesIO()
    decrypt_archive(io.BytesIO(sealed), out, identity)
    return out.getvalue()


@given(st.binary(max_size=1000))
def test_round_trip_and_no_plaintext(data: bytes) -> None:
    sealed = _sealed(data)
    assert is_encrypted_archive(sealed)
    assert _open(sealed) == data
    body = sealed[_header_end(sealed):]
    if len(data) >= 16:
        assert data not in body


def test_another_key_does_not_open_it() -> None:
    sealed = _sealed(b"x" * 500)
    with pytest.raises(NotARecipient):
        _open(sealed, STRANGER)


@given(st.binary(min_size=1, max_size=600), st.data())
def test_any_flipped_byte_or_truncation_fails(data: bytes, draw: st.DataObject) -> None:
    sealed = _sealed(data)
    header_end = _header_end(sealed)
    position = draw.draw(st.integers(header_end, len(sealed) - 1))
    flipped = bytearray(sealed)
    flipped[position] ^= 1 << draw.draw(st.integers(0, 7))
    with pytest.raises(CryptoError):
        _open(bytes(flipped))
    cut = draw.draw(st.integers(header_end, len(sealed) - 1))
    with pytest.raises(CryptoError):
        _open(sealed[:cut])


def test_a_wrapped_key_moved_to_another_archive_does_not_open() -> None:
    first, second = _sealed(b"a" * 200), _sealed(b"b" * 200)
    head_first = first[:_header_end(first)]
    body_second = second[_header_end(second):]
    with pytest.raises(CryptoError):
        _open(head_first + body_second)


# -- the known-answer vector (tests/vectors/crypto/vectors.json, "archive") ------------


def _vector() -> tuple[dict[str, Any], dict[str, str], dict[str, LiaisonKeys]]:
    data = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "crypto"
                       / "vectors.json").read_text("utf-8"))
    keys = {k["id"]: LiaisonKeys.from_secret_bytes(bytes.fromhex(k["secret"]))
            for k in data["keys"]}
    return data["archive"]["inputs"], data["archive"]["outputs"], keys


def _bind(*parts: bytes) -> bytes:
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)


def _outside_decrypt(archive: bytes, x25519_secret: bytes, x25519_public: bytes,
                     key_id: str) -> bytes:
    """Decrypt as an outside tool would, from docs/protocol.md §4.1-4.3 and §12 only.

    Nothing from ``crypto`` but the operator's key material: libsodium's X25519,
    BLAKE2b from hashlib and ChaCha20-Poly1305 from ``cryptography``.
    """
    magic, header, body = archive.split(b"\n", 2)
    assert magic == b"cadena-backup-encrypted/1"
    fields = json.loads(header)
    assert header == json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    assert fields["recipient_key_id"] == key_id
    wrapped = base64.b64decode(fields["wrapped_key"])
    assert len(wrapped) == 81
    assert wrapped[0] == 1
    ephemeral, sealed_key = wrapped[1:33], wrapped[33:]
    shared = crypto_scalarmult(x25519_secret, ephemeral)
    archive_id = fields["archive_id"].encode("ascii")
    kek = hashlib.blake2b(_bind(ephemeral, x25519_public, archive_id, b"operator",
                                key_id.encode("ascii")),
                          digest_size=32, key=shared, person=b"cadena-wrap-v1").digest()
    content_key = ChaCha20Poly1305(kek).decrypt(bytes(12), sealed_key, b"")
    stream = hashlib.blake2b(_bind(archive_id, (0).to_bytes(4, "big")), digest_size=32,
                             key=content_key, person=b"cadena-stream-v1").digest()
    sealed_chunk = fields["chunk_size"] + 16
    count = max(1, -(-len(body) // sealed_chunk))
    aead, plain = ChaCha20Poly1305(stream), b""
    for c in range(count):
        nonce = c.to_bytes(11, "big") + (b"\x01" if c == count - 1 else b"\x00")
        plain += aead.decrypt(nonce, body[c * sealed_chunk:(c + 1) * sealed_chunk], b"")
    return plain


def test_archive_vector_is_reproduced_byte_for_byte() -> None:
    """Fixed key, randomness and time: the committed bytes, so the format cannot drift."""
    inputs, outputs, keys = _vector()
    spec = importlib.util.spec_from_file_location(
        "cadena_crypto_vectors",
        Path(__file__).resolve().parents[1] / "vectors" / "crypto" / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    assert generator.archive_from_inputs(inputs, keys).hex() == outputs["archive"]


def test_archive_vector_opens_to_its_plaintext() -> None:
    inputs, outputs, keys = _vector()
    assert _open(bytes.fromhex(outputs["archive"]), keys[inputs["operator"]]).hex() == (
        inputs["plaintext"])


def test_an_outside_decryptor_written_from_the_docs_opens_the_vector() -> None:
    """docs/protocol.md §12 is enough to decrypt: an independent decryptor agrees."""
    inputs, outputs, keys = _vector()
    operator = keys[inputs["operator"]]
    archive = bytes.fromhex(outputs["archive"])
    plain = _outside_decrypt(archive, operator.secret_bytes()[32:], operator.public.encryption,
                             operator.public.key_id)
    assert plain.hex() == inputs["plaintext"]
    assert archive.split(b"\n", 2)[1].decode() == outputs["header"]
