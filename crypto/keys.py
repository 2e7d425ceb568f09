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
from typing import Any

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
from crypto.errors import FormatError
from crypto.ids import RandomSource

PUBLIC_KEYS_KIND = "cadena-public-keys"
_FINGERPRINT_DOMAIN = b"cadena/fingerprint/v1\x00"


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

    def __repr__(self) -> str:
        return f"LiaisonKeys(key_id={self.public.key_id}, secret=<redacted>)"

    __str__ = __repr__
