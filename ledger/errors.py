"""Errors of the ledger core.

::

    LedgerError
    ├── EntryFormatError          an entry's bytes are not a canonical Cadena entry
    ├── NoteFormatError           a signed note / checkpoint / cosignature is malformed
    ├── VerificationError         something that was checked does not hold
    │   ├── ProofError            a proof is malformed or fails its preconditions
    │   │   ├── InclusionProofError
    │   │   └── ConsistencyProofError
    │   ├── RootMismatchError     a proof recomputes a root other than the trusted one
    │   ├── SignatureError        a note signature is missing, unknown or invalid
    │   └── RefusalDetailError    a refusal's private detail does not match its entry's digest
    └── StorageError              the storage adapter cannot do what was asked
        ├── ConflictError         another writer got there first (compare-and-swap lost)
        └── CorruptLedgerError    stored rows contradict each other: nothing is appended or signed

Verification functions return ``None`` (or the verified value) or raise a
``VerificationError``; they never return a boolean to be forgotten.
"""

from __future__ import annotations


class LedgerError(Exception):
    """Base of every error raised by ``ledger``."""


class EntryFormatError(LedgerError):
    """The bytes are not a canonical, well-formed ledger entry."""


class NoteFormatError(LedgerError):
    """A signed note, checkpoint body or cosignature line is malformed."""


class VerificationError(LedgerError):
    """A verification failed."""


class ProofError(VerificationError):
    """A proof is malformed or its preconditions do not hold."""


class InclusionProofError(ProofError):
    """An inclusion proof is malformed or out of range."""


class ConsistencyProofError(ProofError):
    """A consistency proof is malformed or out of range."""


class RootMismatchError(VerificationError):
    """A proof recomputed a root that differs from the trusted root."""

    def __init__(self, expected: bytes, computed: bytes) -> None:
        super().__init__(f"root mismatch: expected {expected.hex()}, computed {computed.hex()}")
        self.expected = expected
        self.computed = computed


class SignatureError(VerificationError):
    """A signature is missing, made by an unknown key, or invalid."""


class StorageError(LedgerError):
    """The storage adapter failed or was asked for something it does not hold."""


class ConflictError(StorageError):
    """A compare-and-swap lost against another writer."""


class RefusalDetailError(VerificationError):
    """A refusal's private detail (salt, text) does not match the digest in its entry."""


class CorruptLedgerError(StorageError):
    """Stored ledger rows contradict each other (the head and the last entry, or a broken chain).

    Raised before anything is linked or signed over them: ``cadena-server
    ledger verify`` names the fault.
    """
