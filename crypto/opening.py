"""Opening a packet: verify, unwrap, decrypt, check every digest — failing closed.

Order: (1) verify the header signature with the sender's public keys before
reading anything else; (2) find and unwrap this recipient's key and check
it against the signed key commitment; (3) decrypt the manifest and verify the
inner statement; (4) decrypt each content stream, checking chunk tags as they
come, then the ciphertext digest and the plaintext digest at its end.

Streaming decryption writes plaintext before the end of a stream is
authenticated. On any exception the caller MUST discard what was written;
``streamio.decrypt_to_path`` does this for files (temporary file, then
rename): writing files is I/O, kept outside this pure core.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from crypto.envelope import Envelope, SealedPacket, verify_header
from crypto.errors import BadWrappedKey, DigestMismatch, FormatError, NotARecipient
from crypto.hashing import HasherFactory, Sha256
from crypto.header import PacketHeader
from crypto.holder import KeyHolder
from crypto.keys import LiaisonPublicKeys
from crypto.statement import MAX_MANIFEST_SIZE, Statement, decode_manifest, verify_statement
from crypto.stream import StreamDigest, decrypt_stream, stream_key
from crypto.wrap import ContentKey

if TYPE_CHECKING:
    from crypto.share import KeyShare


@dataclass(frozen=True)
class OpenedEnvelope:
    """A verified envelope, its content key and the verified inner statement."""

    envelope: Envelope
    header: PacketHeader
    content_key: ContentKey
    statement: Statement
    statement_bytes: bytes
    statement_signature: bytes


@dataclass(frozen=True)
class OpenedPacket:
    """A fully decrypted and verified in-memory packet."""

    opened: OpenedEnvelope
    message: bytes
    attachments: dict[str, bytes]


def _wrapped_key_for(envelope: Envelope, header: PacketHeader, recipient_id: str,
                     recipient: KeyHolder, *, share: KeyShare | None) -> bytes:
    if share is not None:
        if (share.packet_id != header.packet_id
                or share.header_sha256 != hashlib.sha256(envelope.header).hexdigest()):
            raise BadWrappedKey("key share is for another packet")
        if share.recipient.id != recipient_id or share.recipient.key_id != recipient.public.key_id:
            raise NotARecipient("key share is for another recipient or key")
        return share.wrapped_key
    listed = header.recipient(recipient_id)
    if listed is None or recipient_id not in envelope.wrapped_keys:
        raise NotARecipient(f"{recipient_id} is not a recipient of this packet")
    if listed.key_id != recipient.public.key_id:
        raise NotARecipient(f"packet was wrapped to key {listed.key_id}, not this key set")
    return envelope.wrapped_keys[recipient_id]


def open_envelope(envelope: Envelope, sender: LiaisonPublicKeys, recipient_id: str,
                  recipient: KeyHolder, manifest: BinaryIO, *,
                  share: KeyShare | None = None) -> OpenedEnvelope:
    """Verify the envelope, unwrap the content key and verify the manifest (stream 0).

    ``share`` is a verified :class:`~crypto.share.KeyShare` when the key
    was shared onward instead of wrapped by the sender.
    """
    header = verify_header(envelope.header, envelope.signature, sender)
    wrapped = _wrapped_key_for(envelope, header, recipient_id, recipient, share=share)
    key = recipient.unwrap(wrapped, header.packet_id, recipient_id)
    if key.commitment(header.packet_id) != header.key_commitment:
        raise BadWrappedKey("content key does not match the signed key commitment")
    if header.streams[0].length > MAX_MANIFEST_SIZE:
        raise FormatError("manifest too large")
    plain = io.BytesIO()
    decrypt_stream(stream_key(key.secret, header.packet_id, 0), manifest, plain,
                   header.streams[0], header.chunk_size)
    statement_bytes, signature = decode_manifest(plain.getvalue())
    statement = verify_statement(statement_bytes, signature, sender)
    if statement.packet_id != header.packet_id or statement.sender != header.sender:
        raise FormatError("statement is for another packet or sender")
    if len(statement.attachments) != len(header.streams) - 2:
        raise FormatError("statement and header disagree on the number of streams")
    return OpenedEnvelope(envelope, header, key, statement, statement_bytes, signature)


def decrypt_content(opened: OpenedEnvelope, index: int, reader: BinaryIO,
                    writer: BinaryIO, *, hasher: HasherFactory = Sha256) -> StreamDigest:
    """Decrypt content stream ``index`` (1 = message, 2.. = attachments) to ``writer``.

    Returns the plaintext digest, after checking chunk tags, the signed
    ciphertext digest and the plaintext digest in the statement. On error,
    discard everything written. ``hasher`` computes both digests
    (:mod:`crypto.hashing`).
    """
    header, statement = opened.header, opened.statement
    if not 1 <= index < len(header.streams):
        raise FormatError(f"no content stream {index}")
    key = stream_key(opened.content_key.secret, header.packet_id, index)
    result = decrypt_stream(key, reader, writer, header.streams[index], header.chunk_size,
                            hasher=hasher)
    entry = statement.message if index == 1 else statement.attachments[index - 2]
    if (result.plaintext.length, result.plaintext.sha256) != (entry.length, entry.sha256):
        raise DigestMismatch(f"plaintext of stream {index} differs from the signed statement")
    return result.plaintext


def open_packet(sealed: SealedPacket, sender: LiaisonPublicKeys, recipient_id: str,
                recipient: KeyHolder, *, share: KeyShare | None = None) -> OpenedPacket:
    """Open an in-memory packet completely; raise on any fault."""
    streams = sealed.streams
    if len(streams) < 2:
        raise FormatError("a packet has at least a manifest and a message stream")
    opened = open_envelope(sealed.envelope, sender, recipient_id, recipient,
                           io.BytesIO(streams[0]), share=share)
    if len(streams) != len(opened.header.streams):
        raise FormatError("number of streams differs from the signed header")
    plain = [io.BytesIO() for _ in streams]
    for index in range(1, len(streams)):
        decrypt_content(opened, index, io.BytesIO(streams[index]), plain[index])
    names = [a.name for a in opened.statement.attachments]
    return OpenedPacket(opened, plain[1].getvalue(),
                        {name: out.getvalue() for name, out in zip(names, plain[2:], strict=True)})
