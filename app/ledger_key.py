"""The ledger's checkpoint signing key file.

Format: the 32-byte Ed25519 seed, either raw (exactly 32 bytes) or standard
base64 (44 characters, optional trailing newline; written that way). The file
is created with mode 0600 and refused when group or others can read it, as
ssh does for private keys.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
from pathlib import Path

from nacl.signing import SigningKey

from ledger.note import NoteSigner, NoteVerifier

SEED_SIZE = 32


class LedgerKeyError(Exception):
    """The ledger key file is missing, unreadable, malformed or too widely readable."""


def _decode_seed(data: bytes) -> bytes:
    if len(data) == SEED_SIZE:
        return data
    try:
        seed = base64.b64decode(data.strip(), validate=True)
    except binascii.Error as exc:
        raise LedgerKeyError("ledger key is neither 32 raw bytes nor base64") from exc
    if len(seed) != SEED_SIZE:
        raise LedgerKeyError(f"ledger key seed must be {SEED_SIZE} bytes, got {len(seed)}")
    return seed


def load_signing_key(path: Path) -> SigningKey:
    """Read the Ed25519 signing key at ``path``; raise ``LedgerKeyError`` if unusable."""
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise LedgerKeyError(f"no ledger key at {path}") from exc
    except OSError as exc:
        raise LedgerKeyError(f"cannot read the ledger key at {path}: {exc}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise LedgerKeyError(f"ledger key {path} is accessible by others; chmod 600 it")
    return SigningKey(_decode_seed(data))


def create_signing_key(path: Path) -> SigningKey:
    """Generate a new key and write it to ``path`` (base64, mode 0600); never overwrites."""
    key = SigningKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # O_EXCL: a second bootstrap must not replace the key checkpoints were signed with.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise LedgerKeyError(f"a ledger key already exists at {path}") from exc
    with os.fdopen(fd, "wb") as handle:
        handle.write(base64.b64encode(bytes(key)) + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
    return key


def load_note_signer(path: Path, origin: str) -> NoteSigner:
    """The checkpoint signer for ``origin`` with the key at ``path``."""
    return NoteSigner(origin, load_signing_key(path))


def load_note_verifier(path: Path, origin: str) -> NoteVerifier:
    """The checkpoint verifier matching the signing key at ``path``."""
    return NoteVerifier.from_string(load_note_signer(path, origin).verifier_key())
