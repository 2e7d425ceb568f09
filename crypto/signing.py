"""Domain-separated Ed25519 signatures (DSSE pre-authentication encoding).

Every signed object is signed as ``Ed25519(PAE(payload_type, payload))`` where
PAE is the DSSE v1 pre-authentication encoding::

    PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body

with LEN the ASCII decimal byte length. Each kind of object has its own
payload type, so a signature over a header can never be replayed as a
receipt, a share, a login challenge or a key rotation.
"""

from __future__ import annotations

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from crypto.errors import BadSignature, InvalidArgument

PACKET_HEADER_TYPE = "application/vnd.cadena.packet-header.v1+json"
STATEMENT_TYPE = "application/vnd.cadena.packet-statement.v1+json"
RECEIPT_TYPE = "application/vnd.cadena.receipt.v1+json"
KEY_SHARE_TYPE = "application/vnd.cadena.key-share.v1+json"
AUTH_CHALLENGE_TYPE = "application/vnd.cadena.auth-challenge.v1+json"
KEY_ROTATION_TYPE = "application/vnd.cadena.key-rotation.v1+json"

PAYLOAD_TYPES = frozenset(
    {PACKET_HEADER_TYPE, STATEMENT_TYPE, RECEIPT_TYPE, KEY_SHARE_TYPE, AUTH_CHALLENGE_TYPE,
     KEY_ROTATION_TYPE}
)
SIGNATURE_SIZE = 64


def pae(payload_type: str, payload: bytes) -> bytes:
    """Return the DSSE v1 pre-authentication encoding of ``payload`` under ``payload_type``."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


def _check_type(payload_type: str) -> None:
    if payload_type not in PAYLOAD_TYPES:
        raise InvalidArgument(f"unknown payload type {payload_type!r}")


def sign(signing_key: SigningKey, payload_type: str, payload: bytes) -> bytes:
    """Sign ``payload`` under ``payload_type``; return the 64-byte Ed25519 signature."""
    _check_type(payload_type)
    return bytes(signing_key.sign(pae(payload_type, payload)).signature)


def verify_signature(verify_key: bytes, payload_type: str, payload: bytes,
                     signature: bytes) -> None:
    """Return ``None`` if ``signature`` is valid for ``payload`` under ``payload_type``.

    Raises :class:`BadSignature` otherwise (including a wrong-length
    signature or a malformed public key).
    """
    _check_type(payload_type)
    if len(signature) != SIGNATURE_SIZE or len(verify_key) != 32:
        raise BadSignature("signature or public key has the wrong length")
    try:
        VerifyKey(verify_key).verify(pae(payload_type, payload), signature)
    except (BadSignatureError, ValueError) as exc:
        raise BadSignature(f"signature does not verify as {payload_type}") from exc
