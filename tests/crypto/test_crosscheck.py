"""Cross-checks against the libraries' own primitives, with formats rebuilt by hand."""

from __future__ import annotations

import hashlib
import io
import json
import struct

import nacl.bindings as sodium
import nacl.encoding
import nacl.hash
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given
from hypothesis import strategies as st

from crypto import open_envelope
from tests.crypto.conftest import CHUNK, RECIPIENTS, SENDER, seal

PACKET = seal(message=b"x" * (2 * CHUNK + 3), attachments=[("a", b"y" * CHUNK)],
              recipients=("r0", "r3"))
HEADER = json.loads(PACKET.envelope.header)


def lp(*parts: bytes) -> bytes:
    return b"".join(struct.pack(">I", len(p)) + p for p in parts)


def raw_blake2b(data: bytes, key: bytes, person: bytes) -> bytes:
    return nacl.hash.blake2b(data, digest_size=32, key=key, person=person,
                             encoder=nacl.encoding.RawEncoder)


def unwrap_by_hand(recipient_id: str) -> bytes:
    keys = RECIPIENTS[recipient_id]
    wrapped = PACKET.envelope.wrapped_keys[recipient_id]
    assert wrapped[0] == 1
    assert len(wrapped) == 81
    ephemeral, sealed = wrapped[1:33], wrapped[33:]
    shared = sodium.crypto_scalarmult(bytes(keys.encryption_key), ephemeral)
    key_id = hashlib.sha256(keys.public.signing + keys.public.encryption).digest()[:16].hex()
    info = lp(ephemeral, keys.public.encryption, HEADER["packet_id"].encode(),
              recipient_id.encode(), key_id.encode())
    kek = raw_blake2b(info, shared, b"cadena-wrap-v1")
    return sodium.crypto_aead_chacha20poly1305_ietf_decrypt(sealed, None, bytes(12), kek)


def test_header_signature_verifies_with_cryptography_over_hand_built_pae() -> None:
    body = PACKET.envelope.header
    kind = b"application/vnd.cadena.packet-header.v1+json"
    message = b"DSSEv1 " + str(len(kind)).encode() + b" " + kind + b" " + \
        str(len(body)).encode() + b" " + body
    Ed25519PublicKey.from_public_bytes(SENDER.public.signing).verify(
        PACKET.envelope.signature, message)


def test_wrapped_key_opens_with_plain_pynacl_calls() -> None:
    content_key = unwrap_by_hand("r3")
    assert content_key == unwrap_by_hand("r0")
    commitment = raw_blake2b(HEADER["packet_id"].encode(), content_key, b"cadena-commit-v1")
    assert commitment.hex() == HEADER["key_commitment"]


def naive_decrypt(content_key: bytes, packet_id: str, index: int, ciphertext: bytes) -> bytes:
    """Reference STREAM decryption written from the spec, one chunk at a time."""
    subkey = raw_blake2b(lp(packet_id.encode(), index.to_bytes(4, "big")),
                         content_key, b"cadena-stream-v1")
    pieces = [ciphertext[i:i + CHUNK + 16] for i in range(0, len(ciphertext), CHUNK + 16)]
    out = b""
    for counter, piece in enumerate(pieces):
        final = b"\x01" if counter == len(pieces) - 1 else b"\x00"
        out += sodium.crypto_aead_chacha20poly1305_ietf_decrypt(
            piece, None, counter.to_bytes(11, "big") + final, subkey)
    return out


def test_streams_decrypt_with_a_naive_reference_implementation() -> None:
    key = unwrap_by_hand("r0")
    manifest = naive_decrypt(key, HEADER["packet_id"], 0, PACKET.streams[0])
    assert manifest[0] == 1
    statement = json.loads(manifest[65:])
    assert naive_decrypt(key, HEADER["packet_id"], 1, PACKET.streams[1]) == b"x" * (2 * CHUNK + 3)
    attachment = naive_decrypt(key, HEADER["packet_id"], 2, PACKET.streams[2])
    assert hashlib.sha256(attachment).hexdigest() == statement["attachments"][0]["sha256"]


def test_header_ciphertext_digests_are_plain_sha256() -> None:
    assert [s["sha256"] for s in HEADER["streams"]] == [
        hashlib.sha256(s).hexdigest() for s in PACKET.streams]


@given(st.binary(max_size=5 * CHUNK), st.binary(max_size=3 * CHUNK))
def test_fast_and_naive_decryption_agree(message: bytes, attachment: bytes) -> None:
    packet = seal(message=message, attachments=[("f", attachment)], seed="agree")
    opened = open_envelope(packet.envelope, SENDER.public, "r0", RECIPIENTS["r0"],
                           io.BytesIO(packet.streams[0]))
    key, packet_id = opened.content_key.secret, opened.header.packet_id
    assert naive_decrypt(key, packet_id, 1, packet.streams[1]) == message
    assert naive_decrypt(key, packet_id, 2, packet.streams[2]) == attachment
