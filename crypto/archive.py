"""An operator's encrypted backup archive: the packet cryptography, applied to one stream.

Layout::

    cadena-backup-encrypted/1\\n
    {"archive_id", "chunk_size", "recipient_key_id", "wrapped_key"}\\n   (canonical JSON)
    STREAM ciphertext of the archive (crypto.stream, stream index 0)

A fresh content key per archive, wrapped to the operator's X25519 key exactly
as a packet's key is wrapped to a recipient (:mod:`crypto.wrap`, recipient id
``operator``, the archive id in place of the packet id), and used through the
chunked STREAM construction (:mod:`crypto.stream`). No new primitive: a
truncated, reordered or altered archive fails authentication, and only the
holder of the operator's private key opens it. Like age, this encrypts without
authenticating the sender: the archive's own manifest and the ledger's signed
checkpoints say what it holds.
"""

from __future__ import annotations

import os
from typing import BinaryIO

from crypto.encoding import b64decode, b64encode, canonical_json, parse_canonical
from crypto.errors import FormatError, NotARecipient
from crypto.ids import RandomSource, uuid7
from crypto.keys import LiaisonKeys, LiaisonPublicKeys
from crypto.stream import (
    DEFAULT_CHUNK_SIZE,
    StreamDigest,
    check_chunk_size,
    decrypt_stream,
    digest_stream,
    encrypt_stream,
    stream_key,
)
from crypto.wrap import ContentKey, unwrap_content_key, wrap_content_key

ARCHIVE_MAGIC = b"cadena-backup-encrypted/1\n"
ARCHIVE_RECIPIENT = "operator"
_MAX_HEADER = 4096


def is_encrypted_archive(head: bytes) -> bool:
    """Whether a file beginning with ``head`` is an encrypted archive."""
    return head.startswith(ARCHIVE_MAGIC)


def encrypt_archive(reader: BinaryIO, writer: BinaryIO, recipient: LiaisonPublicKeys, *,
                    chunk_size: int = DEFAULT_CHUNK_SIZE,
                    random: RandomSource = os.urandom, unix_ms: int | None = None) -> None:
    """Encrypt everything ``reader`` yields to ``recipient`` into ``writer``.

    ``random`` is drawn in this order: the archive id's 10 random bytes, the
    32-byte content key, the 32-byte ephemeral X25519 secret; ``unix_ms`` fixes
    the archive id's time (both injectable for the known-answer vector).
    """
    archive_id = uuid7(unix_ms, random=random)
    key = ContentKey.generate(random)
    wrapped = wrap_content_key(key, archive_id, ARCHIVE_RECIPIENT, recipient, random=random)
    header = canonical_json({"archive_id": archive_id, "chunk_size": check_chunk_size(chunk_size),
                             "recipient_key_id": recipient.key_id,
                             "wrapped_key": b64encode(wrapped)})
    writer.write(ARCHIVE_MAGIC + header + b"\n")
    encrypt_stream(stream_key(key.secret, archive_id, 0), reader, writer, chunk_size)


def decrypt_archive(reader: BinaryIO, writer: BinaryIO, identity: LiaisonKeys) -> None:
    """Decrypt an archive from the seekable ``reader`` into ``writer``.

    Raises :class:`FormatError` (not an archive), :class:`NotARecipient`
    (encrypted to another key), or the stream's errors (truncated, altered):
    plaintext already written before a fault must be discarded.
    """
    if reader.read(len(ARCHIVE_MAGIC)) != ARCHIVE_MAGIC:
        raise FormatError("not an encrypted Cadena archive")
    line = reader.readline(_MAX_HEADER)
    if not line.endswith(b"\n"):
        raise FormatError("the archive header is malformed")
    obj = parse_canonical(line[:-1], max_size=_MAX_HEADER)
    archive_id, key_id = obj.get("archive_id"), obj.get("recipient_key_id")
    chunk_size = obj.get("chunk_size")
    if not isinstance(archive_id, str) or not isinstance(key_id, str) or not isinstance(
            chunk_size, int) or not isinstance(obj.get("wrapped_key"), str):
        raise FormatError("the archive header is malformed")
    if key_id != identity.public.key_id:
        raise NotARecipient(f"the archive is encrypted to key {key_id}, "
                            f"not to {identity.public.key_id}")
    key = unwrap_content_key(b64decode(obj["wrapped_key"], "wrapped_key"), archive_id,
                             ARCHIVE_RECIPIENT, identity)
    start = reader.tell()
    measured = digest_stream(reader)
    reader.seek(start)
    decrypt_stream(stream_key(key.secret, archive_id, 0), reader, writer,
                   StreamDigest(measured.length, measured.sha256), check_chunk_size(chunk_size))
