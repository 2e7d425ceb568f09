"""Cadena end-to-end packet cryptography: pure functions over bytes, keys and streams.

The public front: ``app`` and ``client`` import from here (``from crypto
import seal_packet``), not from the modules. Formats and their reasoning are
in ``docs/protocol.md``. Everything that verifies returns the parsed value or
raises a :class:`crypto.errors.CryptoError`.
"""

from crypto.archive import decrypt_archive, encrypt_archive, is_encrypted_archive
from crypto.encoding import b64decode, b64encode, canonical_json, parse_canonical
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
    SourceChanged,
    TamperedChunk,
    TruncatedStream,
    UnknownVersion,
)
from crypto.header import (
    MAX_ATTACHMENTS,
    Classification,
    HandlingCode,
    PacketHeader,
    PacketMeta,
    Party,
    Urgency,
)
from crypto.holder import KeyHolder
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
from crypto.replay import StreamReplay, replay_stream
from crypto.rotation import (
    RotationChallenge,
    RotationStatement,
    SignedRotation,
    box_proof,
    check_box_proof,
    server_box_secret,
    sign_rotation,
    verify_rotation,
)
from crypto.sealing import seal_packet, seal_stream, seal_streams
from crypto.seedfile import SEED_SIZE, SeedFileError, create_seed_key, load_seed_key
from crypto.share import KeyShare, SignedShare, share_content_key, verify_key_share
from crypto.signing import (
    AUTH_CHALLENGE_TYPE,
    KEY_ROTATION_TYPE,
    KEY_SHARE_TYPE,
    PACKET_HEADER_TYPE,
    RECEIPT_TYPE,
    STATEMENT_TYPE,
    pae,
    sign,
    verify_signature,
)
from crypto.statement import Attachment, Statement, verify_statement
from crypto.stream import (
    DEFAULT_CHUNK_SIZE,
    StreamDigest,
    decrypt_stream,
    digest_stream,
    encrypt_stream,
)
from crypto.wrap import ContentKey

__all__ = [
    "decrypt_archive",
    "encrypt_archive",
    "is_encrypted_archive",
    "AUTH_CHALLENGE_TYPE",
    "DEFAULT_CHUNK_SIZE",
    "KEY_ROTATION_TYPE",
    "KEY_SHARE_TYPE",
    "PACKET_HEADER_TYPE",
    "RECEIPT_TYPE",
    "STATEMENT_TYPE",
    "MAX_ATTACHMENTS",
    "SEED_SIZE",
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
    "KeyHolder",
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
    "SeedFileError",
    "SignedReceipt",
    "SignedRotation",
    "SignedShare",
    "SourceChanged",
    "Statement",
    "StreamDigest",
    "StreamReplay",
    "TamperedChunk",
    "TruncatedStream",
    "UnknownVersion",
    "Urgency",
    "b64decode",
    "b64encode",
    "box_proof",
    "canonical_json",
    "check_box_proof",
    "check_ciphertext",
    "check_ed25519_public",
    "check_public_keys",
    "check_x25519_public",
    "create_seed_key",
    "decrypt_content",
    "decrypt_stream",
    "encrypt_stream",
    "digest_stream",
    "format_time",
    "load_keys",
    "load_seed_key",
    "make_receipt",
    "open_envelope",
    "open_packet",
    "pae",
    "parse_canonical",
    "replay_stream",
    "save_keys",
    "seal_packet",
    "seal_stream",
    "seal_streams",
    "server_box_secret",
    "share_content_key",
    "sign",
    "sign_rotation",
    "uuid7",
    "verify_envelope",
    "verify_header",
    "verify_key_share",
    "verify_receipt",
    "verify_rotation",
    "verify_signature",
    "verify_statement",
]
