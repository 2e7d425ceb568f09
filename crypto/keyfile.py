"""Liaison key files: private keys encrypted at rest under a passphrase.

Encrypted form (canonical JSON)::

    {"ciphertext": b64, "kdf": {"alg": "argon2id13", "memlimit": int, "opslimit": int,
     "salt": b64(16)}, "kind": "cadena-liaison-key", "nonce": b64(24),
     "protection": "argon2id-xchacha20poly1305", "public": {"box": b64, "sign": b64}, "v": 1}

The key-encryption key is Argon2id(passphrase, salt, opslimit, memlimit); the
secret (Ed25519 seed || X25519 key, 64 bytes) is sealed with
XChaCha20-Poly1305 whose associated data is the canonical JSON of every other
field, so changing the public keys or the KDF parameters is detected.
Passphrases given as ``str`` are NFC-normalized and UTF-8 encoded.
An unencrypted form (``"protection": "none"``, ``"secret": b64``) is written
and read only when the caller passes ``allow_plaintext=True``.
"""

from __future__ import annotations

import os
import unicodedata
from typing import Any

from nacl import bindings, pwhash
from nacl.exceptions import CryptoError as NaclCryptoError

from crypto.encoding import (
    b64encode,
    canonical_json,
    check_keys,
    check_version,
    get_b64,
    get_int,
    get_obj,
    get_str,
    parse_canonical,
)
from crypto.errors import (
    BadPassphrase,
    CryptoError,
    InvalidArgument,
    KeyFormatError,
    KeyStoreError,
    PlaintextKeyRefused,
)
from crypto.ids import RandomSource
from crypto.keys import LiaisonKeys, LiaisonPublicKeys

KEY_FILE_KIND = "cadena-liaison-key"
_ENCRYPTED = "argon2id-xchacha20poly1305"
_PLAIN = "none"
#: Default cost: libsodium's "sensitive" profile (4 passes, 1 GiB), a few seconds on a
#: workstation. A liaison key opens classified packets, so we pay that once per session.
OPSLIMIT_DEFAULT = pwhash.argon2id.OPSLIMIT_SENSITIVE
MEMLIMIT_DEFAULT = pwhash.argon2id.MEMLIMIT_SENSITIVE
OPSLIMIT_MIN = pwhash.argon2id.OPSLIMIT_MIN
MEMLIMIT_MIN = pwhash.argon2id.MEMLIMIT_MIN
_OPSLIMIT_MAX = 64
_MEMLIMIT_MAX = 4 << 30  # refuse files that would make loading exhaust memory


def _passphrase_bytes(passphrase: str | bytes) -> bytes:
    if isinstance(passphrase, str):
        return unicodedata.normalize("NFC", passphrase).encode("utf-8")
    return passphrase


def _kek(passphrase: bytes, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    return pwhash.argon2id.kdf(32, passphrase, salt, opslimit=opslimit, memlimit=memlimit)


def save_keys(keys: LiaisonKeys, passphrase: str | bytes | None, *,
              allow_plaintext: bool = False, opslimit: int = OPSLIMIT_DEFAULT,
              memlimit: int = MEMLIMIT_DEFAULT, random: RandomSource = os.urandom) -> bytes:
    """Serialize ``keys``, encrypted under ``passphrase``.

    ``passphrase=None`` writes the secret unencrypted and requires
    ``allow_plaintext=True``; an empty passphrase is refused.
    """
    public = keys.public.to_json()
    if passphrase is None:
        if not allow_plaintext:
            raise InvalidArgument("refusing to store a private key unencrypted "
                                  "without allow_plaintext=True")
        return canonical_json({"v": 1, "kind": KEY_FILE_KIND, "protection": _PLAIN,
                               "public": public, "secret": b64encode(keys.secret_bytes())})
    secret = _passphrase_bytes(passphrase)
    if not secret:
        raise InvalidArgument("empty passphrase")
    if not OPSLIMIT_MIN <= opslimit <= _OPSLIMIT_MAX or not (
            MEMLIMIT_MIN <= memlimit <= _MEMLIMIT_MAX):
        raise InvalidArgument("Argon2id limits out of range")
    salt, nonce = random(pwhash.argon2id.SALTBYTES), random(24)
    body: dict[str, Any] = {
        "v": 1, "kind": KEY_FILE_KIND, "protection": _ENCRYPTED, "public": public,
        "kdf": {"alg": "argon2id13", "opslimit": opslimit, "memlimit": memlimit,
                "salt": b64encode(salt)},
        "nonce": b64encode(nonce),
    }
    sealed = bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
        keys.secret_bytes(), canonical_json(body), nonce, _kek(secret, salt, opslimit, memlimit))
    return canonical_json({**body, "ciphertext": b64encode(sealed)})


def load_keys(data: bytes, passphrase: str | bytes | None, *,
              allow_plaintext: bool = False) -> LiaisonKeys:
    """Load a key set written by :func:`save_keys`.

    Raises :class:`BadPassphrase` for a wrong passphrase (or an altered
    file), :class:`KeyFormatError` for anything unparseable, and
    :class:`PlaintextKeyRefused` for an unencrypted file without
    ``allow_plaintext=True``.
    """
    try:
        obj = parse_canonical(data, max_size=8192)
        check_version(obj, 1)
        if get_str(obj, "kind") != KEY_FILE_KIND:
            raise KeyFormatError("not a Cadena liaison key file")
        public = LiaisonPublicKeys.from_json(get_obj(obj, "public"))
        protection = get_str(obj, "protection")
        if protection == _PLAIN:
            keys = _load_plain(obj, allow_plaintext)
        elif protection == _ENCRYPTED:
            keys = _load_encrypted(obj, passphrase)
        else:
            raise KeyFormatError(f"unknown protection {protection!r}")
    except KeyStoreError:
        raise
    except CryptoError as exc:
        raise KeyFormatError(str(exc)) from exc
    if keys.public != public:
        raise KeyFormatError("secret keys do not match the recorded public keys")
    return keys


def _load_plain(obj: dict[str, Any], allow_plaintext: bool) -> LiaisonKeys:
    check_keys(obj, ("v", "kind", "protection", "public", "secret"))
    if not allow_plaintext:
        raise PlaintextKeyRefused("key file is not encrypted; pass allow_plaintext=True")
    return LiaisonKeys.from_secret_bytes(get_b64(obj, "secret", 64))


def _load_encrypted(obj: dict[str, Any], passphrase: str | bytes | None) -> LiaisonKeys:
    check_keys(obj, ("v", "kind", "protection", "public", "kdf", "nonce", "ciphertext"))
    kdf = get_obj(obj, "kdf")
    check_keys(kdf, ("alg", "opslimit", "memlimit", "salt"))
    if get_str(kdf, "alg") != "argon2id13":
        raise KeyFormatError("unknown KDF")
    opslimit = get_int(kdf, "opslimit", OPSLIMIT_MIN, _OPSLIMIT_MAX)
    memlimit = get_int(kdf, "memlimit", MEMLIMIT_MIN, _MEMLIMIT_MAX)
    salt = get_b64(kdf, "salt", pwhash.argon2id.SALTBYTES)
    nonce = get_b64(obj, "nonce", 24)
    sealed = get_b64(obj, "ciphertext", 64 + 16)
    if passphrase is None:
        raise BadPassphrase("key file is encrypted: a passphrase is needed")
    body = {k: v for k, v in obj.items() if k != "ciphertext"}
    kek = _kek(_passphrase_bytes(passphrase), salt, opslimit, memlimit)
    try:
        secret = bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
            sealed, canonical_json(body), nonce, kek)
    except NaclCryptoError as exc:
        raise BadPassphrase("wrong passphrase, or the key file was altered") from exc
    return LiaisonKeys.from_secret_bytes(secret)

