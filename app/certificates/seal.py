"""The centre's certificate seal key: a separate Ed25519 key in the data directory.

A seed file of :mod:`crypto.seedfile`, like the ledger key (a base64 seed,
mode 0600). It is created on first use, exclusively (``O_EXCL``), so that several
API processes starting together end up with one key. It signs nothing but
certificates, under the DSSE payload type of ``custody.bundle``.
"""

from __future__ import annotations

from pathlib import Path

from nacl.signing import SigningKey

from app.certificates.errors import CertificatesUnavailable
from app.settings import Settings
from crypto import SeedFileError, create_seed_key, load_seed_key
from custody import seal_verifier_key

WHAT = "certificate seal key"


def load_seal_key(path: Path) -> SigningKey:
    """The seal key at ``path``, created if there is none yet."""
    if not path.exists():
        try:
            return create_seed_key(path, WHAT)
        except SeedFileError:  # another process created it first
            pass
    try:
        return load_seed_key(path, WHAT)
    except SeedFileError:
        raise CertificatesUnavailable("the certificate seal key is unusable") from None


def published_key(settings: Settings) -> str:
    """The seal's verifier key string, as ``GET /v1/certificates/key`` serves it."""
    return seal_verifier_key(load_seal_key(settings.resolved_seal_key_path()),
                             settings.ledger_origin)
