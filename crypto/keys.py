"""Liaison key sets: an Ed25519 signing key and an X25519 encryption key.

The *key id* names a public key set in headers and ledger entries: the first
16 bytes of SHA-256(signing public key || encryption public key), in hex.
The *fingerprint* is what two liaisons read to each other out of band: six
groups of five decimal digits from a separately domain-separated SHA-256 of
the same 64 bytes.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nacl.bindings import crypto_core_ed25519_is_valid_point
from nacl.public import PrivateKey
from nacl.signing import SigningKey

from crypto.encoding import (
    b64encode,
    canonical_json,
    check_keys,
    check_version,
    get_b64,
    get_str,
    parse_canonical,
)
from crypto.errors import FormatError, InvalidPublicKey
from crypto.ids import RandomSource
from crypto.signing import sign

if TYPE_CHECKING:
    from crypto.wrap import ContentKey

PUBLIC_KEYS_KIND = "cadena-public-keys"
_FINGERPRINT_DOMAIN = b"cadena/fingerprint/v1\x00"
_P = 2**255 - 19


def _u(little_endian_hex: str) -> int:
    return int.from_bytes(bytes.fromhex(little_endian_hex), "little")


# The u-coordinates of Curve25519's points of order 1, 2, 4 and 8 (libsodium's
# x25519_ref10.c has_small_order; cr.yp.to/ecdh.html). X25519 with any of
# them gives a shared secret that does not depend on the private key.
_X25519_SMALL_ORDER = frozenset({
    0, 1, _P - 1,
    _u("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    _u("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
})


@dataclass(frozen=True)
class LiaisonPublicKeys:
    """The public half of a liaison key set (32-byte Ed25519 and X25519 keys)."""

    signing: bytes
    encryption: bytes

    def __post_init__(self) -> None:
        if len(self.signing) != 32 or len(self.encryption) != 32:
            raise FormatError("public keys must be 32 bytes each")

    @property
    def key_id(self) -> str:
        """Hex of the first 16 bytes of SHA-256(signing || encryption)."""
        return hashlib.sha256(self.signing + self.encryption).digest()[:16].hex()

    @property
    def fingerprint(self) -> str:
        """Six groups of five decimal digits, for comparison by voice or on paper."""
        digest = hashlib.sha256(_FINGERPRINT_DOMAIN + self.signing + self.encryption).digest()
        groups = (int.from_bytes(digest[i * 5:i * 5 + 5], "big") % 100_000 for i in range(6))
        return " ".join(f"{g:05d}" for g in groups)

    def to_json(self) -> dict[str, Any]:
        """The JSON object form (embedded in key files)."""
        return {"box": b64encode(self.encryption), "sign": b64encode(self.signing)}

    def to_bytes(self) -> bytes:
        """Canonical JSON: ``{"box":..,"kind":"cadena-public-keys","sign":..,"v":1}``."""
        return canonical_json({"v": 1, "kind": PUBLIC_KEYS_KIND, **self.to_json()})

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> LiaisonPublicKeys:
        """Parse the JSON object form produced by :meth:`to_json`."""
        check_keys(obj, ("box", "sign"))
        return cls(signing=get_b64(obj, "sign", 32), encryption=get_b64(obj, "box", 32))

    @classmethod
    def from_bytes(cls, data: bytes) -> LiaisonPublicKeys:
        """Strictly parse the bytes produced by :meth:`to_bytes`."""
        obj = parse_canonical(data, max_size=4096)
        check_version(obj, 1)
        check_keys(obj, ("v", "kind", "box", "sign"))
        if get_str(obj, "kind") != PUBLIC_KEYS_KIND:
            raise FormatError("not a Cadena public key set")
        return cls.from_json({"box": obj["box"], "sign": obj["sign"]})


def check_x25519_public(key: bytes) -> bytes:
    """Return ``key`` if it is a safe X25519 public key, else raise :class:`InvalidPublicKey`.

    Refused: a length other than 32, a non-canonical encoding (u >= p, or the
    unused top bit set: honest keys never have them, and each would alias a
    canonical one), and the u-coordinates of small order, the all-zero key
    among them (RFC 7748 §6.1: their shared secret is all zero, or fixed).
    """
    if len(key) != 32:
        raise InvalidPublicKey("an X25519 public key is 32 bytes")
    u = int.from_bytes(key, "little")
    if u >= _P:
        raise InvalidPublicKey("the X25519 public key is not in canonical encoding")
    if u in _X25519_SMALL_ORDER:
        raise InvalidPublicKey("the X25519 public key is a point of small order")
    return key


def check_ed25519_public(key: bytes) -> bytes:
    """Return ``key`` if it is a safe Ed25519 public key, else raise :class:`InvalidPublicKey`.

    libsodium's ``crypto_core_ed25519_is_valid_point`` decides: the encoding
    is canonical, the point is on the curve, in the prime-order subgroup and
    not of small order (a small-order key verifies signatures no one made).
    """
    if len(key) != 32:
        raise InvalidPublicKey("an Ed25519 public key is 32 bytes")
    if not crypto_core_ed25519_is_valid_point(key):
        raise InvalidPublicKey("the Ed25519 public key is not a valid point of prime order "
                               "(small order, off the curve or not canonical)")
    return key


def check_public_keys(keys: LiaisonPublicKeys) -> LiaisonPublicKeys:
    """Return ``keys`` if both its keys are safe, else raise :class:`InvalidPublicKey`.

    For every public key set that arrives from outside (enrolment, rotation,
    bootstrap); key sets generated by :class:`LiaisonKeys` always pass.
    """
    check_ed25519_public(keys.signing)
    check_x25519_public(keys.encryption)
    return keys


class LiaisonKeys:
    """A liaison's private key set. Its ``repr`` never shows key material."""

    __slots__ = ("_signing", "_encryption")

    def __init__(self, signing_key: SigningKey, encryption_key: PrivateKey) -> None:
        self._signing = signing_key
        self._encryption = encryption_key

    @classmethod
    def generate(cls, random: RandomSource = os.urandom) -> LiaisonKeys:
        """Generate a fresh key set (``random`` is injectable for test vectors)."""
        return cls.from_secret_bytes(random(64))

    @classmethod
    def from_secret_bytes(cls, secret: bytes) -> LiaisonKeys:
        """Build from 64 bytes: Ed25519 seed (32) || X25519 secret key (32)."""
        if len(secret) != 64:
            raise FormatError("secret key material must be 64 bytes")
        return cls(SigningKey(secret[:32]), PrivateKey(secret[32:]))

    def secret_bytes(self) -> bytes:
        """Ed25519 seed || X25519 secret key (64 bytes). Handle with care."""
        return bytes(self._signing) + bytes(self._encryption)

    @property
    def signing_key(self) -> SigningKey:
        """The Ed25519 signing key."""
        return self._signing

    @property
    def encryption_key(self) -> PrivateKey:
        """The X25519 private key."""
        return self._encryption

    @property
    def public(self) -> LiaisonPublicKeys:
        """The public key set."""
        return LiaisonPublicKeys(
            signing=bytes(self._signing.verify_key), encryption=bytes(self._encryption.public_key)
        )

    def sign(self, payload_type: str, payload: bytes) -> bytes:
        """Sign ``payload`` under ``payload_type`` (:func:`crypto.sign`): a key holder's call."""
        return sign(self._signing, payload_type, payload)

    def unwrap(self, wrapped: bytes, packet_id: str, recipient_id: str) -> ContentKey:
        """Open a content key wrapped to these keys (:func:`crypto.wrap.unwrap_content_key`)."""
        from crypto.wrap import unwrap_content_key  # wrap imports keys

        return unwrap_content_key(wrapped, packet_id, recipient_id, self)

    def __repr__(self) -> str:
        return f"LiaisonKeys(key_id={self.public.key_id}, secret=<redacted>)"

    __str__ = __repr__
