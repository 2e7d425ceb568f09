"""Cadena's audit ledger: pure code over bytes, with storage injected.

The public surface, re-exported from the private-by-convention modules:

- entries: :class:`EntryDraft`, :class:`Actor`, :class:`Entry`,
  :func:`encode_entry`, :func:`parse_entry`;
- the log: :class:`Ledger`, :class:`AppendedEntry`, :class:`MemoryStorage`;
- checkpoints and notes: :class:`Checkpoint`, :class:`NoteSigner`,
  :class:`NoteVerifier`, :class:`CosignatureSigner`, :func:`sign_checkpoint`,
  :func:`open_checkpoint`, :func:`verify_cosignature`, :func:`add_signature_lines`;
- proofs: :func:`verify_inclusion`, :func:`verify_consistency`, :class:`TlogProof`;
- refusal details: :func:`detail_digest`, :func:`verify_refusal_detail`;
- the auditor's verifier: :func:`verify_ledger`, :func:`check_ledger`,
  :class:`LedgerReport`, :class:`Fault`;
- errors: see :mod:`ledger.errors`.
"""

from ledger.errors import (
    ConflictError,
    ConsistencyProofError,
    CorruptLedgerError,
    EntryFormatError,
    InclusionProofError,
    LedgerError,
    NoteFormatError,
    ProofError,
    RefusalDetailError,
    RootMismatchError,
    SignatureError,
    StorageError,
    VerificationError,
)
from ledger.format.entry import Actor, Entry, EntryDraft, encode_entry, parse_entry
from ledger.format.note import (
    Checkpoint,
    CosignatureSigner,
    NoteSigner,
    NoteVerifier,
    add_signature_lines,
    open_checkpoint,
    sign_checkpoint,
    verify_cosignature,
)
from ledger.format.proof import TlogProof, parse_tlog_proof, verify_consistency, verify_inclusion
from ledger.format.refusal import DETAIL_SALT_BYTES, detail_digest, verify_refusal_detail
from ledger.store.log import AppendedEntry, Ledger
from ledger.store.memory import MemoryStorage
from ledger.store.storage import LedgerReader, LedgerStorage, StoredCheckpoint
from ledger.verify.verifier import Fault, LedgerReport, check_ledger, verify_ledger

__all__ = [
    "DETAIL_SALT_BYTES",
    "Actor",
    "AppendedEntry",
    "Checkpoint",
    "ConflictError",
    "ConsistencyProofError",
    "CorruptLedgerError",
    "CosignatureSigner",
    "Entry",
    "EntryDraft",
    "EntryFormatError",
    "Fault",
    "InclusionProofError",
    "Ledger",
    "LedgerError",
    "LedgerReader",
    "LedgerReport",
    "LedgerStorage",
    "MemoryStorage",
    "NoteFormatError",
    "NoteSigner",
    "NoteVerifier",
    "ProofError",
    "RefusalDetailError",
    "RootMismatchError",
    "SignatureError",
    "StorageError",
    "StoredCheckpoint",
    "TlogProof",
    "VerificationError",
    "add_signature_lines",
    "check_ledger",
    "detail_digest",
    "encode_entry",
    "open_checkpoint",
    "parse_entry",
    "parse_tlog_proof",
    "sign_checkpoint",
    "verify_consistency",
    "verify_cosignature",
    "verify_inclusion",
    "verify_ledger",
    "verify_refusal_detail",
]
