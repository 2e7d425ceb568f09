"""Cadena end-to-end packet cryptography: pure functions over bytes, keys and streams.

Formats and their reasoning are in ``docs/protocol.md``. Everything that
verifies returns the parsed value or raises a :class:`crypto.errors.CryptoError`.
"""

from crypto.envelope import (
    Envelope,
    SealedPacket,
    check_ciphertext,
    verify_envelope,
    verify_header,
)
from crypto.errors import (
    BadKeyProof,
    BadPassphrase,
    BadSignature,
    BadWrappedKey,
    ChallengeMismatch,
    CryptoError,
    DigestMismatch,
    EnvelopeError,
    FormatError,
    InvalidArgument,
    InvalidPublicKey,
    KeyFormatError,
    KeyStoreError,
    NotARecipient,
    PlaintextKeyRefused,
    TamperedChunk,
    TruncatedStream,
    UnknownVersion,
)
from crypto.header import Classification, HandlingCode, PacketHeader, PacketMeta, Party, Urgency
from crypto.ids import format_time, uuid7
from crypto.keyfile import load_keys, save_keys
from crypto.keys import (
    LiaisonKeys,
    LiaisonPublicKeys,
    check_ed25519_public,
    check_public_keys,
    check_x25519_public,
)
from crypto.opening import (
    OpenedEnvelope,
    OpenedPacket,
    decrypt_content,
    open_envelope,
    open_packet,
)
from crypto.receipt import Receipt, SignedReceipt, make_receipt, verify_receipt
from crypto.rotation import (
    RotationChallenge,
    RotationStatement,
    SignedRotation,
    box_proof,
    check_box_proof,
    sign_rotation,
    verify_rotation,
)
from crypto.sealing import seal_packet, seal_stream
from crypto.share import KeyShare, SignedShare, share_content_key, verify_key_share
from crypto.signing import pae
from crypto.statement import Attachment, Statement, verify_statement
from crypto.stream import DEFAULT_CHUNK_SIZE, StreamDigest, digest_stream
from crypto.wrap import ContentKey

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "Attachment",
    "BadKeyProof",
    "BadPassphrase",
    "BadSignature",
    "BadWrappedKey",
    "ChallengeMismatch",
    "Classification",
    "ContentKey",
    "CryptoError",
    "DigestMismatch",
    "Envelope",
    "EnvelopeError",
    "FormatError",
    "HandlingCode",
    "InvalidArgument",
    "InvalidPublicKey",
    "KeyFormatError",
    "KeyShare",
    "KeyStoreError",
    "LiaisonKeys",
    "LiaisonPublicKeys",
    "NotARecipient",
    "OpenedEnvelope",
    "OpenedPacket",
    "PacketHeader",
    "PacketMeta",
    "Party",
    "PlaintextKeyRefused",
    "Receipt",
    "RotationChallenge",
    "RotationStatement",
    "SealedPacket",
    "SignedReceipt",
    "SignedRotation",
    "SignedShare",
    "Statement",
    "StreamDigest",
    "TamperedChunk",
    "TruncatedStream",
    "UnknownVersion",
    "Urgency",
    "box_proof",
    "check_box_proof",
    "check_ciphertext",
    "check_ed25519_public",
    "check_public_keys",
    "check_x25519_public",
    "decrypt_content",
    "digest_stream",
    "format_time",
    "load_keys",
    "make_receipt",
    "open_envelope",
    "open_packet",
    "pae",
    "save_keys",
    "seal_packet",
    "seal_stream",
    "share_content_key",
    "sign_rotation",
    "uuid7",
    "verify_envelope",
    "verify_header",
    "verify_key_share",
    "verify_receipt",
    "verify_rotation",
    "verify_statement",
]
