"""The centre's certificate seal key: a separate Ed25519 key in the data directory.

Same file format as the ledger key (``app.ledger_key``: a base64 seed, mode
0600). It is created on first use, exclusively (``O_EXCL``), so that several
API processes starting together end up with one key. It signs nothing but
certificates, under the DSSE payload type of ``ledger.certificate.bundle``.
"""

from __future__ import annotations

from pathlib import Path

from nacl.signing import SigningKey

from app.certificates.errors import CertificatesUnavailable
from app.certificates.settings import CertificateSettings
from app.ledger_key import LedgerKeyError, create_signing_key, load_signing_key
from app.settings import Settings
from ledger.certificate import seal_verifier_key

SEAL_FILE = "certificate-seal.key"


def seal_key_path(settings: Settings, extra: CertificateSettings) -> Path:
    """Where the seal key lives."""
    return extra.certificate_seal_key_path or settings.data_dir / SEAL_FILE


def load_seal_key(path: Path) -> SigningKey:
    """The seal key at ``path``, created if there is none yet."""
    try:
        return load_signing_key(path)
    except LedgerKeyError:
        if path.exists():
            raise CertificatesUnavailable("the certificate seal key is unusable") from None
    try:
        return create_signing_key(path)
    except LedgerKeyError:  # another process created it first
        return load_signing_key(path)


def published_key(settings: Settings, extra: CertificateSettings) -> str:
    """The seal's verifier key string, as ``GET /v1/certificates/key`` serves it."""
    return seal_verifier_key(load_seal_key(seal_key_path(settings, extra)),
                             settings.ledger_origin)
