"""Ed25519 signing keys kept as seed files (the ledger key, the seal key, a witness key).

Format: the 32-byte Ed25519 seed in standard base64 and a newline (44
characters; read also as exactly 32 raw bytes). A seed file is created with
mode 0600 and ``O_EXCL`` (never overwriting a key that signatures were made
with), fsynced before it is used, and refused when group or others can
access it, as ssh refuses such private keys.

These keys belong to services (the centre, a witness node), not to liaisons:
a liaison's keys are passphrase-protected (:mod:`crypto.keyfile`).
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
from pathlib import Path

from nacl.signing import SigningKey

from crypto.errors import KeyStoreError

SEED_SIZE = 32


class SeedFileError(KeyStoreError):
    """A seed file is missing, unreadable, malformed, too widely readable, or already exists."""


def _decode_seed(data: bytes, what: str) -> bytes:
    if len(data) == SEED_SIZE:
        return data
    try:
        seed = base64.b64decode(data.strip(), validate=True)
    except binascii.Error as exc:
        raise SeedFileError(f"{what} is neither {SEED_SIZE} raw bytes nor base64") from exc
    if len(seed) != SEED_SIZE:
        raise SeedFileError(f"{what} seed must be {SEED_SIZE} bytes, got {len(seed)}")
    return seed


def load_seed_key(path: Path, what: str = "key") -> SigningKey:
    """Read the signing key at ``path``; raise :class:`SeedFileError` if it is unusable.

    ``what`` names the key in error messages ("ledger key", "witness key").
    """
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise SeedFileError(f"no {what} at {path}") from exc
    except OSError as exc:
        raise SeedFileError(f"cannot read the {what} at {path}: {exc}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SeedFileError(f"{what} {path} is accessible by others; chmod 600 it")
    return SigningKey(_decode_seed(data, what))


def create_seed_key(path: Path, what: str = "key") -> SigningKey:
    """Generate a key and write it to ``path`` (base64, mode 0600); never overwrite one."""
    key = SigningKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError as exc:
        raise SeedFileError(f"a {what} already exists at {path}") from exc
    with os.fdopen(fd, "wb") as handle:
        handle.write(base64.b64encode(bytes(key)) + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
    return key
