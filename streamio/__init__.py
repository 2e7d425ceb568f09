"""I/O beside the streaming paths: files written from a thread, SHA-256 hashed in threads.

``crypto`` stays pure functions over bytes; what makes its streams fast on a
real machine lives here, outside it, for the client and the service to use:

- :func:`decrypt_to_path`: a content stream decrypted into a file
  atomically (temporary file, fsync, rename), with the two below;
- :class:`BackgroundWriter`: writes a file from a thread while the caller
  decrypts the next chunk; :class:`WritebackPacer`: starts the disk's
  write-back every few MiB (Linux ``sync_file_range``), so the final
  ``fsync`` finds little left (:mod:`streamio.outfile`);
- :class:`ThreadedSha256`: a :class:`crypto.hashing.StreamHasher` whose large
  updates run in a worker thread, beside the cipher (:mod:`streamio.hashing`).

It imports only ``crypto``: ``app``, ``client`` and ``bench`` import it;
``crypto`` and ``ledger`` never do. (Not in ``client``: the service's blob
store paces its writes too, and the service never imports the client.)
"""

from streamio.hashing import ThreadedSha256
from streamio.outfile import BackgroundWriter, WritebackPacer, decrypt_to_path

__all__ = ["BackgroundWriter", "ThreadedSha256", "WritebackPacer", "decrypt_to_path"]
