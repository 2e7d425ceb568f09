"""Chunked content encryption: the STREAM construction over ChaCha20-Poly1305.

Each stream of a packet (manifest, message, each attachment) is encrypted
under its own subkey::

    subkey = BLAKE2b-256(key=content_key, person="cadena-stream-v1",
                         data=bind(packet_id, u32be(stream_index)))

and cut into chunks of ``chunk_size`` plaintext bytes (the last one shorter,
and empty only if the whole stream is empty). Chunk ``i`` is sealed with
ChaCha20-Poly1305 (RFC 8439) under the nonce ``u88be(i) || final`` where
``final`` is 0x01 for the last chunk and 0x00 otherwise (the STREAM
construction of Hoang, Reyhanitabar, Rogaway and Vizár, as used by age).
So a chunk only opens at its own position, in its own stream of its own
packet, and the stream only ends where the sender ended it: truncation,
reordering, duplication and splicing all fail authentication.

Ciphertext layout is simply the concatenated chunks (``chunk + 16-byte tag``);
the ciphertext length is signed in the header, which fixes the chunk
boundaries. SHA-256 of plaintext and ciphertext are computed while streaming,
by the caller's :data:`~crypto.hashing.HasherFactory` (``hashlib`` in this
thread by default; the client hashes in worker threads beside the cipher), so
content passes through memory a few chunks at a time.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from crypto.encoding import bind
from crypto.errors import DigestMismatch, FormatError, TamperedChunk, TruncatedStream
from crypto.hashing import HasherFactory, Sha256

TAG_SIZE = 16
#: 1 MiB: per-chunk Python overhead is negligible (~1 µs per MiB) and peak memory stays
#: at a few chunks. Recorded per packet in the signed header.
DEFAULT_CHUNK_SIZE = 1 << 20
MIN_CHUNK_SIZE = 64
MAX_CHUNK_SIZE = 16 << 20


@dataclass(frozen=True)
class StreamDigest:
    """Length and lowercase-hex SHA-256 of a byte stream."""

    length: int
    sha256: str


@dataclass(frozen=True)
class StreamResult:
    """What encrypting or decrypting one stream measured."""

    plaintext: StreamDigest
    ciphertext: StreamDigest


def stream_key(content_key: bytes, packet_id: str, index: int) -> bytes:
    """Derive the subkey of stream ``index`` of packet ``packet_id``."""
    data = bind(packet_id.encode("ascii"), index.to_bytes(4, "big"))
    return hashlib.blake2b(data, digest_size=32, key=content_key,
                           person=b"cadena-stream-v1").digest()


def chunk_nonce(counter: int, final: bool) -> bytes:
    """The 12-byte nonce of chunk ``counter``: 11-byte big-endian counter || final flag."""
    return counter.to_bytes(11, "big") + (b"\x01" if final else b"\x00")


def check_chunk_size(chunk_size: int) -> int:
    """Return ``chunk_size`` if within [MIN_CHUNK_SIZE, MAX_CHUNK_SIZE], else raise."""
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise FormatError(f"chunk size {chunk_size} out of range")
    return chunk_size


def ciphertext_length(plaintext_length: int, chunk_size: int) -> int:
    """Ciphertext length of a ``plaintext_length``-byte stream."""
    chunks = max(1, -(-plaintext_length // chunk_size))
    return plaintext_length + chunks * TAG_SIZE


def chunk_lengths(ct_length: int, chunk_size: int) -> tuple[int, int]:
    """Return (number of chunks, ciphertext length of the last chunk) for a stream.

    Raises :class:`FormatError` if no plaintext length encrypts to ``ct_length``.
    """
    full = chunk_size + TAG_SIZE
    chunks = max(1, -(-ct_length // full))
    last = ct_length - (chunks - 1) * full
    if last < TAG_SIZE or (chunks > 1 and last == TAG_SIZE):
        raise FormatError(f"{ct_length} is not a valid ciphertext length")
    return chunks, last


def read_exact(reader: BinaryIO, size: int) -> bytes:
    """Read ``size`` bytes from ``reader``, fewer only at its end (short reads retried)."""
    data = reader.read(size)
    if len(data) == size or not data:
        return data
    parts = [data]
    got = len(data)
    while got < size:
        more = reader.read(size - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def encrypt_stream(key: bytes, reader: BinaryIO, writer: BinaryIO | None,
                   chunk_size: int = DEFAULT_CHUNK_SIZE,
                   tags: bytearray | None = None, *,
                   hasher: HasherFactory = Sha256) -> StreamResult:
    """Encrypt everything ``reader`` yields into ``writer``; return both digests.

    ``writer`` may be ``None`` to only measure the stream (the ciphertext is
    then dropped); ``tags``, if given, receives each chunk's tag in order
    (what :func:`crypto.replay.replay_stream` needs to encrypt it again).
    Both digests are computed by ``hasher`` (:mod:`crypto.hashing`).
    """
    check_chunk_size(chunk_size)
    aead = ChaCha20Poly1305(key)
    pt_len = ct_len = 0
    counter = 0
    with hasher() as pt_hash, hasher() as ct_hash:
        chunk = read_exact(reader, chunk_size)
        while True:
            following = read_exact(reader, chunk_size) if len(chunk) == chunk_size else b""
            final = not following
            sealed = aead.encrypt(chunk_nonce(counter, final), chunk, None)  # a new buffer:
            pt_hash.update(chunk)                       # a threaded hasher keeps both
            ct_hash.update(sealed)
            if writer is not None:
                writer.write(sealed)
            if tags is not None:
                tags += sealed[-TAG_SIZE:]
            pt_len += len(chunk)
            ct_len += len(sealed)
            if final:
                break
            chunk, counter = following, counter + 1
        return StreamResult(StreamDigest(pt_len, pt_hash.hexdigest()),
                            StreamDigest(ct_len, ct_hash.hexdigest()))


def decrypt_stream(key: bytes, reader: BinaryIO, writer: BinaryIO, expected: StreamDigest,
                   chunk_size: int, *, hasher: HasherFactory = Sha256) -> StreamResult:
    """Decrypt a stream whose signed ciphertext length and digest are ``expected``.

    Fails closed: raises :class:`TruncatedStream`, :class:`TamperedChunk` or
    :class:`DigestMismatch` as soon as the fault is seen. Plaintext of the
    chunks before the fault has already been written; discard it. Both
    digests are computed by ``hasher`` (:mod:`crypto.hashing`); the
    plaintext handed to ``writer`` is a fresh buffer per chunk.
    """
    chunks, last = chunk_lengths(expected.length, check_chunk_size(chunk_size))
    aead = ChaCha20Poly1305(key)
    pt_len = 0
    with hasher() as pt_hash, hasher() as ct_hash:
        for counter in range(chunks):
            final = counter == chunks - 1
            size = last if final else chunk_size + TAG_SIZE
            sealed = read_exact(reader, size)
            if len(sealed) < size:
                raise TruncatedStream(f"stream ends inside chunk {counter} of {chunks}")
            plain = bytearray(size - TAG_SIZE)
            try:
                aead.decrypt_into(chunk_nonce(counter, final), sealed, None, plain)
            except InvalidTag:
                raise TamperedChunk(f"chunk {counter} fails authentication") from None
            ct_hash.update(sealed)
            pt_hash.update(plain)
            writer.write(plain)
            pt_len += len(plain)
        if reader.read(1):
            raise TamperedChunk("data follows the final chunk")
        if ct_hash.hexdigest() != expected.sha256:
            raise DigestMismatch("ciphertext digest differs from the signed header")
        return StreamResult(StreamDigest(pt_len, pt_hash.hexdigest()), expected)


def digest_stream(reader: BinaryIO, block_size: int = 1 << 20) -> StreamDigest:
    """SHA-256 and length of everything ``reader`` yields, in constant memory."""
    digest = hashlib.sha256()
    length = 0
    while block := reader.read(block_size):
        digest.update(block)
        length += len(block)
    return StreamDigest(length, digest.hexdigest())
