"""The envelope: signed header bytes, signature and per-recipient wrapped keys.

Ciphertext streams travel and are stored beside the envelope (the server
keeps them as blobs); :class:`SealedPacket` bundles both for in-memory use.
Envelope encoding (canonical JSON)::

    {"header": b64(header bytes), "signature": b64(64),
     "v": 1, "wrapped_keys": {"<recipient id>": b64(81)}}

Anyone holding the sender's public keys can check an envelope and the
ciphertext with :func:`verify_header` and :func:`check_ciphertext`, without any
secret: that is what the server does on submission.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import BinaryIO

from crypto.encoding import (
    b64encode,
    canonical_json,
    check_keys,
    check_version,
    get_b64,
    get_obj,
    parse_canonical,
)
from crypto.errors import BadSignature, DigestMismatch, FormatError
from crypto.header import MAX_HEADER_SIZE, PacketHeader
from crypto.ids import check_actor_id
from crypto.keys import LiaisonPublicKeys
from crypto.signing import PACKET_HEADER_TYPE, SIGNATURE_SIZE, verify_signature
from crypto.stream import StreamDigest, digest_stream
from crypto.wrap import WRAPPED_KEY_SIZE

ENVELOPE_VERSION = 1


@dataclass(frozen=True)
class Envelope:
    """Header bytes as signed, the sender's signature, and wrapped keys by recipient id."""

    header: bytes
    signature: bytes
    wrapped_keys: Mapping[str, bytes]

    def to_bytes(self) -> bytes:
        """Canonical JSON encoding."""
        return canonical_json({
            "v": ENVELOPE_VERSION, "header": b64encode(self.header),
            "signature": b64encode(self.signature),
            "wrapped_keys": {k: b64encode(v) for k, v in self.wrapped_keys.items()},
        })

    @classmethod
    def from_bytes(cls, data: bytes) -> Envelope:
        """Strictly parse envelope bytes (the header itself is parsed on verification)."""
        obj = parse_canonical(data, max_size=4 * MAX_HEADER_SIZE)
        check_version(obj, ENVELOPE_VERSION)
        check_keys(obj, ("v", "header", "signature", "wrapped_keys"))
        wrapped = get_obj(obj, "wrapped_keys")
        keys = {check_actor_id(k): get_b64(wrapped, k, WRAPPED_KEY_SIZE) for k in wrapped}
        return cls(get_b64(obj, "header"), get_b64(obj, "signature", SIGNATURE_SIZE), keys)


@dataclass(frozen=True)
class SealedPacket:
    """An envelope together with its ciphertext streams (manifest first)."""

    envelope: Envelope
    streams: tuple[bytes, ...]


def verify_header(header: bytes, signature: bytes, sender: LiaisonPublicKeys) -> PacketHeader:
    """Verify the sender's signature over ``header`` FIRST, then parse it strictly.

    Returns the parsed header. Raises :class:`BadSignature` (bad signature, or
    the header names a different sender key set), :class:`FormatError`.
    """
    if len(header) > MAX_HEADER_SIZE:
        raise FormatError("header too large")
    verify_signature(sender.signing, PACKET_HEADER_TYPE, header, signature)
    parsed = PacketHeader.from_bytes(header)
    if parsed.sender.key_id != sender.key_id:
        raise BadSignature("header names a different sender key set")
    return parsed


def verify_envelope(envelope: Envelope, sender: LiaisonPublicKeys) -> PacketHeader:
    """Verify the header and that wrapped keys exist exactly for the listed recipients."""
    header = verify_header(envelope.header, envelope.signature, sender)
    if set(envelope.wrapped_keys) != set(header.recipient_ids):
        raise FormatError("wrapped keys do not match the header's recipients")
    return header


def check_ciphertext(header: PacketHeader, index: int, reader: BinaryIO) -> StreamDigest:
    """Hash ciphertext stream ``index`` from ``reader`` and compare with the signed header.

    Returns the digest; raises :class:`DigestMismatch` if length or SHA-256 differ.
    """
    if not 0 <= index < len(header.streams):
        raise FormatError(f"packet has no stream {index}")
    found = digest_stream(reader)
    if found != header.streams[index]:
        raise DigestMismatch(f"stream {index} differs from the signed header")
    return found
