"""Sealing a packet: encrypt content streams, sign the statement and header, wrap keys.

Order of work (each content byte is read once):

1. encrypt the message (stream 1) and each attachment (streams 2..) while
   hashing their plaintext and ciphertext;
2. build and sign the inner statement from those plaintext digests, and
   encrypt it as the manifest (stream 0) — it is last in time, first in order,
   so a recipient reads names and digests before any content;
3. sign the header, which now knows every ciphertext digest;
4. wrap the content key for each recipient (sorted by id).

Injectable randomness is consumed in this order: packet id (10 bytes, only
if no ``packet_id`` is given), content key (32), statement salt (32), one
ephemeral X25519 secret (32) per recipient in sorted id order.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO

from crypto.envelope import Envelope, SealedPacket
from crypto.errors import FormatError, InvalidArgument
from crypto.hashing import HasherFactory, Sha256
from crypto.header import PacketHeader, PacketMeta, Party
from crypto.holder import KeyHolder
from crypto.ids import RandomSource, check_uuid7, format_time, require_actor_id, uuid7
from crypto.keys import LiaisonPublicKeys
from crypto.replay import StreamReplay
from crypto.signing import PACKET_HEADER_TYPE, STATEMENT_TYPE
from crypto.statement import Attachment, Statement, check_attachment_name, encode_manifest
from crypto.stream import DEFAULT_CHUNK_SIZE, check_chunk_size, encrypt_stream, stream_key
from crypto.wrap import ContentKey, wrap_content_key


def _check_inputs(sender_id: str, recipients: Mapping[str, LiaisonPublicKeys],
                  names: Sequence[str], outputs: int, *, chunk_size: int) -> None:
    require_actor_id(sender_id, "sender_id")
    if not recipients:
        raise InvalidArgument("a packet needs at least one recipient")
    for rid in recipients:
        require_actor_id(rid, "recipient id")
    for name in names:
        check_attachment_name(name)
    if len(set(names)) != len(names):
        raise InvalidArgument("attachment names must be unique")
    if outputs != len(names) + 2:
        raise InvalidArgument("need one output per stream: manifest, message, attachments")
    try:
        check_chunk_size(chunk_size)
    except FormatError as exc:
        raise InvalidArgument(str(exc)) from None


@dataclass(frozen=True)
class SealedStreams:
    """The envelope, and a replay of each content stream that was sealed without an output."""

    envelope: Envelope
    replays: dict[int, StreamReplay] = field(default_factory=dict)


def seal_stream(sender: KeyHolder, sender_id: str, recipients: Mapping[str, LiaisonPublicKeys],
                meta: PacketMeta, message: BinaryIO, attachments: Sequence[tuple[str, BinaryIO]],
                outputs: Sequence[BinaryIO], *, chunk_size: int = DEFAULT_CHUNK_SIZE,
                packet_id: str | None = None, now: datetime | None = None,
                random: RandomSource = os.urandom, hasher: HasherFactory = Sha256) -> Envelope:
    """Seal a packet, streaming content from readers to ``outputs``; return the envelope.

    ``outputs[0]`` receives the manifest ciphertext, ``outputs[1]`` the
    message's, ``outputs[2 + i]`` that of attachment ``i``. Nothing is held
    in memory beyond a few chunks. ``packet_id``, ``now`` and ``random`` are
    injectable for deterministic test vectors; ``hasher`` computes the
    streams' digests (:mod:`crypto.hashing`; the client hashes in threads).
    """
    return seal_streams(sender, sender_id, recipients, meta, message, attachments, outputs,
                        chunk_size=chunk_size, packet_id=packet_id, now=now,
                        random=random, hasher=hasher).envelope


def seal_streams(sender: KeyHolder, sender_id: str,
                 recipients: Mapping[str, LiaisonPublicKeys], meta: PacketMeta,
                 message: BinaryIO, attachments: Sequence[tuple[str, BinaryIO]],
                 outputs: Sequence[BinaryIO | None], *, chunk_size: int = DEFAULT_CHUNK_SIZE,
                 packet_id: str | None = None, now: datetime | None = None,
                 random: RandomSource = os.urandom,
                 hasher: HasherFactory = Sha256) -> SealedStreams:
    """Seal as :func:`seal_stream`, but a content stream whose output is ``None`` is not kept.

    Its ciphertext is only measured (digest signed in the header), and a
    :class:`~crypto.replay.StreamReplay` is returned for it under its stream
    index, with which :func:`crypto.replay.replay_stream` produces the same
    ciphertext again from the same source. The manifest (``outputs[0]``)
    needs a writer: nothing could read its plaintext again.
    """
    names = [name for name, _ in attachments]
    _check_inputs(sender_id, recipients, names, len(outputs), chunk_size=chunk_size)
    manifest_output = outputs[0]
    if manifest_output is None:
        raise InvalidArgument("the manifest needs an output")
    created = format_time(now)
    if packet_id is None:
        packet_id = uuid7(None if now is None else int(now.timestamp() * 1000), random)
    check_uuid7(packet_id)
    key = ContentKey.generate(random)
    salt = random(32)
    sender_party = Party(sender_id, sender.public.key_id)

    sources: list[BinaryIO] = [message, *(reader for _, reader in attachments)]
    replays: dict[int, StreamReplay] = {}
    results = []
    for index, (src, output) in enumerate(zip(sources, outputs[1:], strict=True), start=1):
        subkey = stream_key(key.secret, packet_id, index)
        tags = bytearray() if output is None else None
        results.append(encrypt_stream(subkey, src, output, chunk_size, tags, hasher=hasher))
        if tags is not None:
            replays[index] = StreamReplay(subkey, chunk_size, results[-1].ciphertext,
                                          bytes(tags))
    statement = Statement(
        packet_id=packet_id, sender=sender_party, salt=salt, message=results[0].plaintext,
        attachments=tuple(Attachment(name, r.plaintext.length, r.plaintext.sha256)
                          for name, r in zip(names, results[1:], strict=True)),
    ).to_bytes()
    manifest = encode_manifest(statement, sender.sign(STATEMENT_TYPE, statement))
    manifest_result = encrypt_stream(stream_key(key.secret, packet_id, 0), io.BytesIO(manifest),
                                     manifest_output, chunk_size, hasher=hasher)
    header = PacketHeader(
        packet_id=packet_id, sender=sender_party,
        recipients=tuple(Party(rid, recipients[rid].key_id) for rid in sorted(recipients)),
        meta=meta, created=created, chunk_size=chunk_size,
        key_commitment=key.commitment(packet_id),
        streams=(manifest_result.ciphertext, *(r.ciphertext for r in results)),
    ).to_bytes()
    wrapped = {rid: wrap_content_key(key, packet_id, rid, recipients[rid], random=random)
               for rid in sorted(recipients)}
    envelope = Envelope(header, sender.sign(PACKET_HEADER_TYPE, header), wrapped)
    return SealedStreams(envelope, replays)


def seal_packet(sender: KeyHolder, sender_id: str, recipients: Mapping[str, LiaisonPublicKeys],
                meta: PacketMeta, message: bytes,
                attachments: Mapping[str, bytes] | Sequence[tuple[str, bytes]] = (), *,
                chunk_size: int = DEFAULT_CHUNK_SIZE, packet_id: str | None = None,
                now: datetime | None = None, random: RandomSource = os.urandom) -> SealedPacket:
    """Seal a packet held in memory (bytes in, :class:`SealedPacket` out).

    Same format and arguments as :func:`seal_stream`.
    """
    items = list(attachments.items()) if isinstance(attachments, Mapping) else list(attachments)
    outputs = [io.BytesIO() for _ in range(len(items) + 2)]
    envelope = seal_stream(
        sender, sender_id, recipients, meta, io.BytesIO(message),
        [(name, io.BytesIO(data)) for name, data in items], outputs,
        chunk_size=chunk_size, packet_id=packet_id, now=now, random=random,
    )
    return SealedPacket(envelope, tuple(out.getvalue() for out in outputs))
