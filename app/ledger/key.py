"""The ledger's checkpoint signing key file.

The file format and its safety rules (base64 seed, mode 0600, never
overwritten, refused when others can read it) are those of
:mod:`crypto.seedfile`, shared with the certificate seal key and witness keys.
"""

from __future__ import annotations

from pathlib import Path

from nacl.signing import SigningKey

from crypto import SeedFileError, create_seed_key, load_seed_key
from ledger import NoteSigner, NoteVerifier


class LedgerKeyError(Exception):
    """The ledger key file is missing, unreadable, malformed or too widely readable."""


def load_signing_key(path: Path) -> SigningKey:
    """Read the Ed25519 signing key at ``path``; raise ``LedgerKeyError`` if unusable."""
    try:
        return load_seed_key(path, "ledger key")
    except SeedFileError as exc:
        raise LedgerKeyError(str(exc)) from exc


def create_signing_key(path: Path) -> SigningKey:
    """Generate a new key and write it to ``path`` (base64, mode 0600); never overwrites.

    Never overwriting matters: a second bootstrap must not replace the key
    that checkpoints were signed with.
    """
    try:
        return create_seed_key(path, "ledger key")
    except SeedFileError as exc:
        raise LedgerKeyError(str(exc)) from exc


def load_note_signer(path: Path, origin: str) -> NoteSigner:
    """The checkpoint signer for ``origin`` with the key at ``path``."""
    return NoteSigner(origin, load_signing_key(path))


def load_note_verifier(path: Path, origin: str) -> NoteVerifier:
    """The checkpoint verifier matching the signing key at ``path``."""
    return NoteVerifier.from_string(load_note_signer(path, origin).verifier_key())
