"""``/v1/blobs`` and ``/v1/packets``: the packets sub-API (``Client.packets``).

This module moves bytes and typed values; it decides nothing about trust.
Sealing, opening and every check of what the server says are in
:mod:`client.transfer` and :mod:`client.verify`.

Ciphertext never passes through memory whole: :meth:`PacketsAPI.upload_blob`
streams a file in blocks (the body is a factory, so a re-login after 401
streams it again from its start), :meth:`PacketsAPI.open_stream` returns a
reader over a download that resumes with ``Range`` where a broken connection
left it, and :meth:`PacketsAPI.download` writes a stream to a file, resuming
a partial file left by an earlier attempt.
"""

from __future__ import annotations

import base64
import builtins
import hashlib
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from client.errors import NetworkError, ProtocolError
from client.models import parse
from client.packet_models import (
    BlobStored,
    BoxName,
    PacketCreated,
    PacketPage,
    PacketRead,
    PacketStatusName,
    PacketSummary,
    PacketWithdrawn,
    ReceiptCreated,
    ReceiptPage,
    ShareCreated,
    ShareRequestDone,
    ShareRequestPage,
    Thread,
)
from client.session import ApiSession
from crypto import Envelope, StreamDigest

BLOCK_SIZE = 1 << 20
"""Bytes per read of an uploaded file (one ciphertext chunk at the default chunk size)."""
RESUME_ATTEMPTS = 5
"""How many times a broken download is resumed before giving up."""
Progress = Callable[[int], None]
"""Told how many more bytes were transferred."""


def _seg(value: str) -> str:
    return quote(value, safe="")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _time(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("times sent to the server must be timezone-aware")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def file_blocks(path: Path, progress: Progress | None = None,
                block_size: int = BLOCK_SIZE) -> Iterator[bytes]:
    """Yield the bytes of ``path`` in blocks, reporting each to ``progress``."""
    with path.open("rb") as handle:
        while block := handle.read(block_size):
            if progress is not None:
                progress(len(block))
            yield block


def file_digest(path: Path, block_size: int = BLOCK_SIZE) -> StreamDigest:
    """Length and SHA-256 of a file, read in blocks."""
    digest = hashlib.sha256()
    length = 0
    with path.open("rb") as handle:
        while block := handle.read(block_size):
            digest.update(block)
            length += len(block)
    return StreamDigest(length, digest.hexdigest())


class RemoteStream:
    """A file-like reader over one ciphertext stream that resumes after a broken connection.

    Reads start at byte 0 and continue with ``Range: bytes=<offset>-`` after a
    transport error; the resumed answer must be a 206 for that offset with the
    same ``ETag`` (the stream's SHA-256), so bytes of another stream can never
    be spliced in.
    """

    def __init__(self, session: ApiSession, path: str, length: int, sha256: str,
                 *, progress: Progress | None = None) -> None:
        """Read ``length`` bytes of ``path`` whose SHA-256 is ``sha256``."""
        self._session, self._path, self.length, self.sha256 = session, path, length, sha256
        self._progress = progress
        self.offset = 0
        self._rest = b""  # received, not yet read
        self._pieces: Iterator[bytes] | None = None
        self._open = ExitStack()
        self.resumed = 0
        self.ledger_indexes: builtins.list[int] = []

    def _connect(self) -> Iterator[bytes]:
        headers = {"Accept": "application/octet-stream"}
        if self.offset:
            headers["Range"] = f"bytes={self.offset}-"
        response = self._open.enter_context(self._session.stream(self._path, headers=headers))
        self._check(response)
        index = response.headers.get("cadena-ledger-index", "")
        if index.isdigit():
            self.ledger_indexes.append(int(index))
        # A response read already (some test transports) is served from memory.
        self._pieces = (iter((response.content,)) if response.is_stream_consumed
                        else response.iter_raw())
        return self._pieces

    def _check(self, response: httpx.Response) -> None:
        etag = response.headers.get("etag", "").strip('"')
        if etag and etag != self.sha256:
            self.close()
            raise ProtocolError(f"{self._path}: the server sent stream {etag}, "
                                f"not {self.sha256}")
        if self.offset:
            wanted = f"bytes {self.offset}-{self.length - 1}/{self.length}"
            if response.status_code != 206 or response.headers.get("content-range") != wanted:
                self.close()
                raise ProtocolError(f"{self._path}: cannot resume at byte {self.offset}")

    def _next_piece(self) -> bytes:
        for attempt in range(RESUME_ATTEMPTS + 1):
            try:
                pieces = self._pieces if self._pieces is not None else self._connect()
                return next(pieces, b"")
            except (httpx.TransportError, NetworkError) as exc:
                self.close()
                time.sleep(0.2 * attempt)
                if attempt == RESUME_ATTEMPTS:
                    raise NetworkError(f"download of {self._path} broke at byte "
                                       f"{self.offset} and could not be resumed: {exc}") from exc
                self.resumed += 1
        raise AssertionError("unreachable")  # pragma: no cover

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (all that remain if negative); ``b""`` at the end."""
        want = self.length if size < 0 else size
        parts, got = ([self._rest], len(self._rest)) if self._rest else ([], 0)
        while got < want and self.offset < self.length:
            piece = self._next_piece()
            if not piece:
                break
            parts.append(piece)
            got += len(piece)
            self.offset += len(piece)
            if self._progress is not None:
                self._progress(len(piece))
        self._rest = b""
        if got > want:  # keep the tail of the last piece for the next read
            keep = len(parts[-1]) - (got - want)
            parts[-1], self._rest = parts[-1][:keep], parts[-1][keep:]
        return b"".join(parts)  # each byte copied once (a single part is not copied)

    def close(self) -> None:
        """Close the current connection (a later read reconnects where it stopped)."""
        self._open.close()
        self._pieces = None


class PacketsAPI:
    """Blobs, packets, receipts, sharing, withdrawal and threads (prosecutors)."""

    def __init__(self, session: ApiSession) -> None:
        """Use ``session`` for every call."""
        self._s = session

    # -- upload and submission -------------------------------------------

    def upload_blob(self, path: Path, digest: StreamDigest,
                    progress: Progress | None = None) -> BlobStored:
        """Stream the ciphertext file ``path`` to ``PUT /v1/blobs/{sha256}``.

        ``digest`` is the file's length and SHA-256 (sealing measures them);
        the server's answer must name the same digest and size.
        """
        return self.upload_chunks(digest, lambda: file_blocks(path, progress))

    def upload_chunks(self, digest: StreamDigest,
                      chunks: Callable[[], Iterable[bytes]]) -> BlobStored:
        """Stream the ciphertext that ``chunks()`` yields to ``PUT /v1/blobs/{sha256}``.

        ``chunks`` is called once per attempt (a re-login after 401 sends the
        body again from its start) and must yield ``digest.length`` bytes
        hashing to ``digest.sha256``; the server checks both and its answer
        must name the same digest and size.
        """
        response = self._s.request(
            "PUT", f"/v1/blobs/{digest.sha256}", content=chunks,
            headers={"Content-Type": "application/octet-stream",
                     "Content-Length": str(digest.length)})
        stored = parse(BlobStored, self._s._json(response))
        if stored.sha256 != digest.sha256 or stored.size != digest.length:
            raise ProtocolError(f"the server stored {stored.sha256} ({stored.size} bytes) for "
                                f"{digest.sha256} ({digest.length} bytes)")
        return stored

    def submit(self, envelope: Envelope,
               inline: Mapping[int, bytes] | None = None) -> PacketCreated:
        """Submit a signed envelope; every stream uploaded before or in ``inline``.

        ``inline``: ciphertext by stream index, sent in the same request (for
        small streams: one request instead of one upload each).
        """
        body: dict[str, Any] = {"envelope": _b64(envelope.to_bytes())}
        if inline:
            body["inline_streams"] = [{"index": i, "ciphertext": _b64(data)}
                                      for i, data in sorted(inline.items())]
        return parse(PacketCreated, self._s.post_json("/v1/packets", body))

    # -- listing and retrieval -------------------------------------------

    def list(self, box: BoxName = "inbox", *, channel: str | None = None,
             case_reference: str | None = None, since: datetime | None = None,
             until: datetime | None = None, status: PacketStatusName | None = None,
             limit: int = 50, cursor: str | None = None) -> PacketPage:
        """One page of the inbox or sent box, newest first (metadata only)."""
        params: dict[str, Any] = {"box": box, "limit": limit}
        optional: Mapping[str, Any] = {
            "channel": channel, "case_reference": case_reference, "status": status,
            "since": _time(since) if since else None, "until": _time(until) if until else None,
            "cursor": cursor}
        params.update({k: v for k, v in optional.items() if v is not None})
        return parse(PacketPage, self._s.get_json("/v1/packets", params))

    def retrieve(self, packet_id: str) -> PacketRead:
        """The signed header, streams and, for a holder, their wrapped key (key delivery)."""
        return parse(PacketRead, self._s.get_json(f"/v1/packets/{_seg(packet_id)}"))

    def stream_path(self, packet_id: str, index: int) -> str:
        """The API path of ciphertext stream ``index``."""
        return f"/v1/packets/{_seg(packet_id)}/streams/{index}"

    def open_stream(self, packet_id: str, index: int, length: int, sha256: str,
                    *, progress: Progress | None = None) -> RemoteStream:
        """A resuming reader over ciphertext stream ``index`` (unverified bytes)."""
        return RemoteStream(self._s, self.stream_path(packet_id, index), length, sha256,
                            progress=progress)

    def download(self, packet_id: str, index: int, dest: Path, expected: StreamDigest,
                 *, progress: Progress | None = None) -> StreamDigest:
        """Download ciphertext stream ``index`` to ``dest``, resuming a partial file.

        A partial download lives in ``dest`` + ``.part``; a later call asks
        only for the bytes after it (``Range``). The whole file must have the
        ``expected`` length and SHA-256 (else it is deleted and
        :class:`~client.errors.ProtocolError` raised), then it is renamed to ``dest``.
        """
        part = dest.with_name(dest.name + ".part")
        have = part.stat().st_size if part.exists() else 0
        if have > expected.length:
            part.unlink()
            have = 0
        reader = self.open_stream(packet_id, index, expected.length, expected.sha256,
                                  progress=progress)
        reader.offset = have
        try:
            with part.open("ab") as out:
                while block := reader.read(BLOCK_SIZE):
                    out.write(block)
                out.flush()
                os.fsync(out.fileno())
        finally:
            reader.close()
        got = file_digest(part)
        if got != expected:
            part.unlink()
            raise ProtocolError(f"stream {index} of {packet_id} does not have the signed digest")
        os.replace(part, dest)
        return got

    # -- receipts, sharing, withdrawal, threads --------------------------

    def add_receipt(self, packet_id: str, receipt: bytes, signature: bytes) -> ReceiptCreated:
        """Post a signed receipt (``crypto.make_receipt``)."""
        body = {"signed": _b64(receipt), "signature": _b64(signature)}
        return parse(ReceiptCreated,
                     self._s.post_json(f"/v1/packets/{_seg(packet_id)}/receipts", body))

    def receipts(self, packet_id: str) -> ReceiptPage:
        """Every receipt of a packet (its originator only)."""
        return parse(ReceiptPage, self._s.get_json(f"/v1/packets/{_seg(packet_id)}/receipts"))

    def request_share(self, packet_id: str, recipient_id: str) -> ShareRequestDone:
        """Ask the originator to let the packet go on to ``recipient_id``."""
        path = f"/v1/packets/{_seg(packet_id)}/share-requests"
        return parse(ShareRequestDone, self._s.post_json(path, {"recipient_id": recipient_id}))

    def share_requests(self, packet_id: str) -> ShareRequestPage:
        """Share requests of a packet (all for its originator, one's own otherwise)."""
        path = f"/v1/packets/{_seg(packet_id)}/share-requests"
        return parse(ShareRequestPage, self._s.get_json(path))

    def approve_share(self, packet_id: str, request_id: str) -> ShareRequestDone:
        """Approve a pending share request (the originator)."""
        path = f"/v1/packets/{_seg(packet_id)}/share-requests/{_seg(request_id)}/approve"
        return parse(ShareRequestDone, self._s.post_json(path, {}))

    def share(self, packet_id: str, share: bytes, signature: bytes) -> ShareCreated:
        """Post a signed key share (``crypto.share_content_key``) for a new recipient."""
        body = {"signed": _b64(share), "signature": _b64(signature)}
        return parse(ShareCreated,
                     self._s.post_json(f"/v1/packets/{_seg(packet_id)}/shares", body))

    def withdraw(self, packet_id: str, reason: str) -> PacketWithdrawn:
        """Withdraw a packet (its originator): no more key or ciphertext delivery."""
        path = f"/v1/packets/{_seg(packet_id)}/withdraw"
        return parse(PacketWithdrawn, self._s.post_json(path, {"reason": reason}))

    def thread(self, packet_id: str) -> Thread:
        """The request the packet belongs to and every reply the caller may see."""
        return parse(Thread, self._s.get_json(f"/v1/packets/{_seg(packet_id)}/thread"))

    def find(self, packet_id: str) -> PacketSummary | None:
        """The packet's metadata from its thread (no key delivery), if the caller may see it."""
        return next((p for p in self.thread(packet_id).packets if p.id == packet_id), None)
