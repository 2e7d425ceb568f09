"""Exceptions raised by :mod:`crypto`.

Every failure of a cryptographic check raises a subclass of
:class:`CryptoError`; nothing in ``crypto`` returns a boolean verdict.
Opening fails closed with the most specific class that applies::

    CryptoError
    ├── InvalidArgument            caller passed a value we refuse to seal or sign (ValueError)
    │   └── InvalidPublicKey       a public key that is no safe point: small order, non-canonical
    ├── SourceChanged              a sealed source read again to upload it has changed
    ├── KeyStoreError              a stored liaison key cannot be loaded
    │   ├── BadPassphrase          wrong passphrase, or the encrypted key was altered
    │   ├── KeyFormatError         not a key file we understand
    │   └── PlaintextKeyRefused    unencrypted key file loaded without allow_plaintext=True
    └── EnvelopeError              a packet, statement, receipt or share fails verification
        ├── FormatError            bytes that do not parse strictly (or are not canonical)
        │   └── UnknownVersion     a version field or byte we do not implement
        ├── BadSignature           an Ed25519 signature does not verify under its payload type
        ├── BadKeyProof            a proof of possession of a new key set fails (key rotation)
        ├── ChallengeMismatch      a signed statement was made for another challenge or context
        ├── NotARecipient          no wrapped key for this recipient
        ├── BadWrappedKey          the wrapped key does not open for this packet and recipient
        ├── TamperedChunk          a chunk fails authentication (altered, moved, spliced),
        │                          or data follows the final chunk
        ├── TruncatedStream        a stream ends before its final chunk
        └── DigestMismatch         a ciphertext or plaintext digest differs from the signed one

Callers that stream plaintext to a writer must discard what was written when
any of these is raised (as ``streamio.decrypt_to_path`` does).
"""

from __future__ import annotations


class CryptoError(Exception):
    """Base class of every error raised by :mod:`crypto`."""


class InvalidArgument(CryptoError, ValueError):
    """A value passed in by the caller is not acceptable (bad name, id, code...)."""


class InvalidPublicKey(InvalidArgument):
    """A public key that is not a safe point to sign for or encrypt to.

    All zero, of small order (so a shared secret or a signature check no longer
    depends on a secret), or not in canonical encoding.
    """


class SourceChanged(CryptoError):
    """A source encrypted again for upload (:mod:`crypto.replay`) differs from what was sealed."""


class KeyStoreError(CryptoError):
    """A stored liaison key set cannot be loaded."""


class BadPassphrase(KeyStoreError):
    """The passphrase is wrong, or the encrypted key file was altered."""


class KeyFormatError(KeyStoreError):
    """The key file is not in a format this version understands."""


class PlaintextKeyRefused(KeyStoreError):
    """An unencrypted key file was loaded without ``allow_plaintext=True``."""


class EnvelopeError(CryptoError):
    """A packet or one of its signed companions failed verification."""


class FormatError(EnvelopeError):
    """Bytes that do not parse strictly, or are not in canonical form."""


class UnknownVersion(FormatError):
    """A version number this implementation does not know."""


class BadSignature(EnvelopeError):
    """An Ed25519 signature does not verify for the expected payload type and key."""


class BadKeyProof(EnvelopeError):
    """A proof of possession of a new key (Ed25519 signature or X25519 proof) fails.

    ``key`` says which: ``"signing"`` (Ed25519) or ``"encryption"`` (X25519).
    """

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


class ChallengeMismatch(EnvelopeError):
    """A validly signed statement names another challenge, liaison, origin or key."""


class NotARecipient(EnvelopeError):
    """The packet carries no wrapped key for this recipient."""


class BadWrappedKey(EnvelopeError):
    """A wrapped content key does not open for this packet, recipient and key."""


class TamperedChunk(EnvelopeError):
    """A chunk failed authentication (altered, reordered, duplicated, spliced) or data
    follows the final chunk."""


class TruncatedStream(EnvelopeError):
    """A ciphertext stream ended before its final chunk."""


class DigestMismatch(EnvelopeError):
    """A computed digest differs from the one the sender signed."""
