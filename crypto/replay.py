"""Encrypting a sealed stream again, byte for byte, to upload it without staging it.

A blob is uploaded under the SHA-256 of its ciphertext, which is only known
once the whole stream has been encrypted, and the header signs it. Rather
than writing a large attachment's ciphertext to a temporary file between
sealing and upload, the sealer keeps a :class:`StreamReplay` for it (the
stream's subkey, its ciphertext length and digest, and each chunk's 16-byte
tag) and :func:`replay_stream` encrypts the source again while it uploads:
same key, same nonces, same plaintext, so the same ciphertext, which the
server checks against the digest anyway.

Same key and nonce over *different* plaintext would be nonce reuse, so each
chunk is re-encrypted in memory and compared with the tag recorded at sealing
time before it is yielded: if the source changed since it was sealed,
:class:`~crypto.errors.SourceChanged` is raised and no byte of the differing
chunk leaves this function. Every byte yielded, on every attempt, is
therefore identical to the sealed ciphertext. The check costs nothing
(Poly1305 computed the tag already); a different plaintext with the same tag
under the same one-time Poly1305 key has probability about 2^-100 per chunk.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from crypto.errors import SourceChanged
from crypto.stream import TAG_SIZE, StreamDigest, chunk_lengths, chunk_nonce, read_exact


@dataclass(frozen=True)
class StreamReplay:
    """What encrypting a sealed stream again needs: subkey, chunk size, digest, chunk tags.

    ``tags`` is the concatenation of every chunk's tag, in order. Holds a
    secret (the stream's subkey): keep it no longer than the upload.
    """

    key: bytes
    chunk_size: int
    ciphertext: StreamDigest
    tags: bytes

    @property
    def chunks(self) -> int:
        """Number of chunks in the stream."""
        return len(self.tags) // TAG_SIZE


def replay_stream(replay: StreamReplay, reader: BinaryIO) -> Iterator[bytes]:
    """Yield the sealed ciphertext of the stream again, one chunk at a time, from ``reader``.

    ``reader`` must yield the same plaintext as when the stream was sealed;
    raises :class:`SourceChanged` before yielding any chunk that differs
    (shorter source, other bytes), so nothing differing is ever released.
    """
    chunks, last = chunk_lengths(replay.ciphertext.length, replay.chunk_size)
    if chunks != replay.chunks:
        raise SourceChanged("the replay's tags do not match its ciphertext length")
    aead = ChaCha20Poly1305(replay.key)
    for counter in range(chunks):
        final = counter == chunks - 1
        size = (last if final else replay.chunk_size + TAG_SIZE) - TAG_SIZE
        chunk = read_exact(reader, size)
        if len(chunk) != size:
            raise SourceChanged(f"the source ends inside chunk {counter} of {chunks}, "
                                "but it was longer when sealed")
        sealed = aead.encrypt(chunk_nonce(counter, final), chunk, None)
        want = replay.tags[counter * TAG_SIZE:(counter + 1) * TAG_SIZE]
        if not hmac.compare_digest(sealed[-TAG_SIZE:], want):
            raise SourceChanged(f"chunk {counter} of the source changed since it was sealed")
        yield sealed
