"""Content keys and their per-recipient wrapping (X25519 + BLAKE2b + ChaCha20-Poly1305).

A wrapped key is 81 bytes::

    0x01 || ephemeral_public (32) || ChaCha20-Poly1305(kek, nonce=0^12, content_key) (48)

    shared = X25519(ephemeral_secret, recipient_encryption_public)
    kek    = BLAKE2b-256(key=shared, person="cadena-wrap-v1",
                         data=bind(ephemeral_public, recipient_encryption_public,
                                   packet_id, recipient_id, recipient_key_id))

Each wrap uses a fresh ephemeral key, so ``kek`` is used once and a fixed
nonce is safe. Because the packet id and recipient id are inside the KDF,
a wrapped key copied to another packet or another recipient does not open.

The signed header also carries a *key commitment*
``BLAKE2b-256(key=content_key, person="cadena-commit-v1", data=packet_id)``:
a recipient checks it before decrypting, so a sender (or sharer) cannot give
different recipients different keys for the same signed ciphertext.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from nacl import bindings

from crypto.encoding import bind
from crypto.errors import BadWrappedKey, FormatError, InvalidArgument, UnknownVersion
from crypto.ids import RandomSource
from crypto.keys import LiaisonKeys, LiaisonPublicKeys

WRAP_VERSION = 1
WRAPPED_KEY_SIZE = 1 + 32 + 32 + 16
_ZERO_NONCE = bytes(12)


class ContentKey:
    """A packet's 32-byte content key. Its ``repr`` never shows the key."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise InvalidArgument("content key must be 32 bytes")
        self._key = bytes(key)

    @classmethod
    def generate(cls, random: RandomSource = os.urandom) -> ContentKey:
        """A fresh random content key."""
        return cls(random(32))

    @property
    def secret(self) -> bytes:
        """The raw key bytes. Handle with care."""
        return self._key

    def commitment(self, packet_id: str) -> str:
        """Hex key commitment for ``packet_id``, as signed in the header."""
        return hashlib.blake2b(packet_id.encode("ascii"), digest_size=32, key=self._key,
                               person=b"cadena-commit-v1").hexdigest()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ContentKey) and hmac.compare_digest(self._key, other._key)

    def __hash__(self) -> int:
        return hash(self.commitment("hash"))

    def __repr__(self) -> str:
        return "ContentKey(<redacted>)"

    __str__ = __repr__


def _kek(shared: bytes, ephemeral: bytes, recipient: LiaisonPublicKeys, packet_id: str,
         *, recipient_id: str) -> bytes:
    data = bind(ephemeral, recipient.encryption, packet_id.encode("ascii"),
                recipient_id.encode("ascii"), recipient.key_id.encode("ascii"))
    return hashlib.blake2b(data, digest_size=32, key=shared, person=b"cadena-wrap-v1").digest()


def wrap_content_key(content_key: ContentKey, packet_id: str, recipient_id: str,
                     recipient: LiaisonPublicKeys, *, random: RandomSource = os.urandom) -> bytes:
    """Wrap ``content_key`` for ``recipient`` (id and key set) within packet ``packet_id``."""
    ephemeral_secret = random(32)
    ephemeral = bindings.crypto_scalarmult_base(ephemeral_secret)
    try:
        shared = bindings.crypto_scalarmult(ephemeral_secret, recipient.encryption)
    except RuntimeError as exc:  # libsodium refuses low-order points (all-zero output)
        raise InvalidArgument("recipient encryption key is a low-order point") from exc
    kek = _kek(shared, ephemeral, recipient, packet_id, recipient_id=recipient_id)
    sealed = ChaCha20Poly1305(kek).encrypt(_ZERO_NONCE, content_key.secret, None)
    return bytes([WRAP_VERSION]) + ephemeral + sealed


def unwrap_content_key(wrapped: bytes, packet_id: str, recipient_id: str,
                       recipient: LiaisonKeys) -> ContentKey:
    """Open a wrapped key with the recipient's key set.

    Raises :class:`UnknownVersion`, :class:`FormatError` or, if the wrap is
    altered or was made for another packet, recipient or key,
    :class:`BadWrappedKey`.
    """
    if not wrapped or wrapped[0] != WRAP_VERSION:
        raise UnknownVersion("unknown wrapped-key version")
    if len(wrapped) != WRAPPED_KEY_SIZE:
        raise FormatError(f"wrapped key is {len(wrapped)} bytes, expected {WRAPPED_KEY_SIZE}")
    ephemeral, sealed = wrapped[1:33], wrapped[33:]
    try:
        shared = bindings.crypto_scalarmult(bytes(recipient.encryption_key), ephemeral)
        kek = _kek(shared, ephemeral, recipient.public, packet_id, recipient_id=recipient_id)
        key = ChaCha20Poly1305(kek)
        return ContentKey(key.decrypt(_ZERO_NONCE, sealed, None))
    except (RuntimeError, InvalidTag) as exc:
        raise BadWrappedKey("wrapped key does not open for this packet and recipient") from exc
