"""Cadena's audit ledger: pure code over bytes, with storage injected.

The public front: ``app`` and ``client`` import from here (``from ledger
import Entry``), never from the subpackages, which are:

- :mod:`ledger.format`: entries (:class:`EntryDraft`, :class:`Actor`,
  :class:`Entry`, :func:`encode_entry`, :func:`parse_entry`), canonical JSON
  (:func:`canonical_json`, :class:`StrictJSON`), RFC 9162 trees and proofs
  (:mod:`~ledger.format.merkle`, :func:`verify_inclusion`,
  :func:`verify_consistency`, :class:`TlogProof`), signed notes and
  checkpoints (:class:`Checkpoint`, :class:`NoteSigner`, :class:`NoteVerifier`,
  :class:`CosignatureSigner`, :func:`sign_checkpoint`, :func:`open_checkpoint`,
  :func:`verify_cosignature`, :func:`add_signature_lines`), refusal details
  (:func:`detail_digest`, :func:`verify_refusal_detail`), the key log of
  key entries (:class:`KeyLeaf`, :func:`key_log_head`, :class:`KeyLogFrontier`);
- :mod:`ledger.store`: the log (:class:`Ledger`, :class:`AppendedEntry`,
  :func:`prepare_checkpoint`) over the storage protocol (:class:`LedgerStorage`,
  :class:`LedgerReader`), the key log's extension at checkpoint time
  (:func:`prepare_keyed_checkpoint`), with :class:`MemoryStorage` and :class:`TreeCache`;
- :mod:`ledger.sql`: the SQLAlchemy storage engine, a front of its own
  (``from ledger.sql import SqlStorage``), so that importing ``ledger`` does
  not import SQLAlchemy;
- :mod:`ledger.verify`: the auditor's verifier (:func:`verify_ledger`,
  :func:`check_ledger`, :class:`LedgerReport`, :class:`Fault`) and its
  key-log pass (:class:`KeyLogCheck`), which the auditor's client runs too;
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
from ledger.format import merkle
from ledger.format.canonical import StrictJSON, canonical_json
from ledger.format.entry import (
    GENESIS_PREV,
    Actor,
    Entry,
    EntryDraft,
    encode_entry,
    format_time,
    parse_entry,
)
from ledger.format.keylog import (
    KEY_ACTIONS,
    KeyLeaf,
    KeyLogFrontier,
    KeyLogHead,
    decode_key_leaf,
    extension_line,
    key_leaf_of,
    key_leaves,
    key_log_head,
)
from ledger.format.merkle import EMPTY_ROOT, HASH_SIZE, Node, TreeBuilder, frontier, leaf_hash
from ledger.format.note import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    MAX_TREE_SIZE,
    Checkpoint,
    CosignatureSigner,
    NoteSigner,
    NoteVerifier,
    add_signature_lines,
    open_checkpoint,
    parse_checkpoint_body,
    parse_note,
    sign_checkpoint,
    verify_cosignature,
)
from ledger.format.note import (
    b64decode as note_b64decode,
)
from ledger.format.proof import TlogProof, parse_tlog_proof, verify_consistency, verify_inclusion
from ledger.format.refusal import (
    DETAIL_SALT_BYTES,
    DIGEST_FIELD,
    detail_digest,
    verify_refusal_detail,
)
from ledger.store.keylog import (
    KeyedCheckpoint,
    KeyLogBase,
    MemoryKeyLog,
    prepare_keyed_checkpoint,
)
from ledger.store.log import AppendedEntry, Ledger
from ledger.store.memory import MemoryStorage
from ledger.store.presign import prepare_checkpoint
from ledger.store.storage import LedgerReader, LedgerStorage, StoredCheckpoint
from ledger.store.treecache import TreeCache
from ledger.verify.keylog import KeyLogCheck
from ledger.verify.report import Fault, LedgerReport
from ledger.verify.verifier import check_ledger, verify_ledger

__all__ = [
    "KEY_ACTIONS",
    "KeyLeaf",
    "KeyLogBase",
    "KeyLogCheck",
    "KeyLogFrontier",
    "KeyLogHead",
    "KeyedCheckpoint",
    "MemoryKeyLog",
    "decode_key_leaf",
    "extension_line",
    "key_leaf_of",
    "key_leaves",
    "key_log_head",
    "prepare_keyed_checkpoint",
    "note_b64decode",
    "ALG_COSIGNATURE_V1",
    "ALG_ED25519",
    "DETAIL_SALT_BYTES",
    "DIGEST_FIELD",
    "EMPTY_ROOT",
    "GENESIS_PREV",
    "HASH_SIZE",
    "MAX_TREE_SIZE",
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
    "Node",
    "NoteFormatError",
    "NoteSigner",
    "NoteVerifier",
    "ProofError",
    "RefusalDetailError",
    "RootMismatchError",
    "SignatureError",
    "StorageError",
    "StoredCheckpoint",
    "StrictJSON",
    "TlogProof",
    "TreeBuilder",
    "TreeCache",
    "VerificationError",
    "add_signature_lines",
    "canonical_json",
    "check_ledger",
    "detail_digest",
    "encode_entry",
    "format_time",
    "frontier",
    "leaf_hash",
    "merkle",
    "open_checkpoint",
    "parse_checkpoint_body",
    "parse_entry",
    "parse_note",
    "parse_tlog_proof",
    "prepare_checkpoint",
    "sign_checkpoint",
    "verify_consistency",
    "verify_cosignature",
    "verify_inclusion",
    "verify_ledger",
    "verify_refusal_detail",
]
