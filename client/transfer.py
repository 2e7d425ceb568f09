"""Sending and fetching packets end to end, verifying everything on this machine.

:func:`send_packet` seals the message and attachments with
``crypto.seal_streams`` (sealing measures every ciphertext digest the header
signs; the manifest and message ciphertext go to temporary files), sends the
manifest and message inline with the envelope when they are small
(:data:`INLINE_BYTES`: one request), and uploads every other stream as a blob,
streaming — an attachment is encrypted a second time as it uploads
(``crypto.replay``: same bytes, checked chunk by chunk), so the upload of a
large file costs no disk write and the server works on it while the client
encrypts — then submits the envelope. :func:`fetch_packet` retrieves the
envelope, verifies the sender's signature and the server's metadata
(:mod:`client.verify`), decrypts each stream as it downloads (chunk tags,
ciphertext and plaintext digests all checked by ``crypto``) into a staging
directory that is renamed into place only when everything verified, and
posts a signed receipt. Content passes through memory a chunk at a time, but
for the small manifest and message sent inline.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, cast

from client.errors import Conflict, ProblemError, UsageError
from client.packet_models import PacketCreated, PacketRead, ReceiptCreated
from client.sdk import Client
from client.verify import VerificationFailed, verified_header, verified_share
from crypto import (
    DEFAULT_CHUNK_SIZE,
    CryptoError,
    Envelope,
    InvalidArgument,
    KeyHolder,
    LiaisonPublicKeys,
    OpenedEnvelope,
    PacketHeader,
    PacketMeta,
    SourceChanged,
    StreamDigest,
    StreamReplay,
    make_receipt,
    open_envelope,
    replay_stream,
    seal_streams,
)
from streamio import ThreadedSha256, decrypt_to_path

INLINE_BYTES = 256 * 1024
"""The manifest and message go inline with the envelope when their ciphertext is at most
this together (the server's default JSON limit, 1 MiB, holds it in base64 with room)."""
RECORD_NAME = "packet.json"
PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
"""What ``fetch`` writes is the liaison's alone, as the decrypted streams are (mkstemp)."""
"""Written beside the decrypted files: signed header and statement, file digests."""
Progress = Callable[[int], None]
ProgressFactory = Callable[[str, int], AbstractContextManager[Progress]]
"""Opens a progress display for ``(label, total bytes)``; yields the advance function."""


@contextlib.contextmanager
def no_progress(label: str, total: int) -> Iterator[Progress]:
    """A progress display that shows nothing."""
    yield lambda _n: None


class CountingReader:
    """Wraps a binary reader and reports every byte read (for the sealing progress bar)."""

    def __init__(self, reader: BinaryIO, progress: Progress) -> None:
        """Read from ``reader``, telling ``progress`` how much."""
        self._reader, self._progress = reader, progress

    def read(self, size: int = -1) -> bytes:
        """Read and report."""
        data = self._reader.read(size)
        self._progress(len(data))
        return data


@dataclass(frozen=True)
class StreamSource:
    """An attachment that is not a plaintext file: a name, a size, and how to read it.

    ``open`` returns a new reader from the start at each call (the attachment
    is read once to seal it and again as it uploads). The desk's attachments
    are these: kept encrypted under a key in memory, decrypted as they are read.
    """

    name: str
    size: int
    open: Callable[[], BinaryIO]


Attachment = Path | StreamSource


def _name(source: Attachment) -> str:
    return source.name


def _size(source: Attachment) -> int:
    return source.stat().st_size if isinstance(source, Path) else source.size


def _open(source: Attachment) -> BinaryIO:
    return source.open("rb") if isinstance(source, Path) else source.open()


@dataclass(frozen=True)
class Outgoing:
    """A packet to send: recipients, signed metadata, the message and attachments."""

    recipients: Sequence[str]
    meta: PacketMeta
    message: BinaryIO
    attachments: Sequence[Attachment] = ()
    message_size: int = 0


@dataclass(frozen=True)
class SentPacket:
    """A submitted packet: the server's record, the signed header, each upload's entry."""

    created: PacketCreated
    header: PacketHeader
    recipient_keys: dict[str, LiaisonPublicKeys]
    upload_entries: list[int]


def directory_keys(client: Client, liaison_id: str) -> LiaisonPublicKeys:
    """The liaison's current public key set as the directory serves it (key id recomputed).

    Not checked against the profile's pins: :func:`recipient_keys` does that.
    """
    key = client.liaisons.get(liaison_id).current_key
    if key is None:
        raise UsageError(f"{liaison_id} has no current key: nothing can be sent to them")
    try:
        keys = LiaisonPublicKeys.from_json({"sign": key.signing_public,
                                            "box": key.encryption_public})
    except CryptoError as exc:
        raise VerificationFailed(f"the directory's key of {liaison_id} is invalid: {exc}") from exc
    if keys.key_id != key.key_id:
        raise VerificationFailed(f"the directory names key {key.key_id} of {liaison_id}, but "
                                 f"its public keys have id {keys.key_id}")
    return keys


def recipient_keys(client: Client, recipient_ids: Sequence[str]) -> dict[str, LiaisonPublicKeys]:
    """Each recipient's current public key set, checked against the pinned contact keys."""
    found: dict[str, LiaisonPublicKeys] = {}
    for rid in recipient_ids:
        keys = directory_keys(client, rid)
        client.liaisons.pin(rid, keys, current=True)
        found[rid] = keys
    return found


@dataclass(frozen=True)
class _Sealed:
    """A sealed packet: the envelope, the staged ciphertext files and the replayed streams."""

    envelope: Envelope
    staged: dict[int, Path]
    replays: dict[int, StreamReplay]


def _seal(keys: KeyHolder, sender_id: str, recipients: dict[str, LiaisonPublicKeys],
          out: Outgoing, *, work: Path, progress: ProgressFactory) -> _Sealed:
    # Manifest and message (possibly standard input) are staged as ciphertext
    # files; attachments are files, read again and re-encrypted as they upload
    # (crypto.replay), so their ciphertext never touches the disk.
    staged = {0: work / "stream-0.ct", 1: work / "stream-1.ct"}
    total = out.message_size + sum(_size(p) for p in out.attachments)
    with ExitStack() as stack, progress("encrypting", total) as advance:
        outputs: list[BinaryIO | None] = [stack.enter_context(p.open("wb"))
                                          for p in staged.values()]
        outputs += [None] * len(out.attachments)
        readers = [(_name(p), stack.enter_context(_open(p))) for p in out.attachments]
        try:
            sealed = seal_streams(
                keys, sender_id, recipients, out.meta,
                cast(BinaryIO, CountingReader(out.message, advance)),
                [(n, cast(BinaryIO, CountingReader(r, advance))) for n, r in readers],
                outputs, chunk_size=DEFAULT_CHUNK_SIZE, hasher=ThreadedSha256)
        except InvalidArgument as exc:
            raise UsageError(f"cannot seal this packet: {exc}") from exc
    return _Sealed(sealed.envelope, staged, sealed.replays)


def _replayed(replay: StreamReplay, source: Attachment, advance: Progress
              ) -> Iterator[bytes]:
    with _open(source) as reader:
        try:
            for chunk in replay_stream(replay, reader):
                advance(len(chunk))
                yield chunk
        except SourceChanged as exc:
            raise UsageError(f"{source} changed while it was being sent: {exc}") from exc


def _small_staged(sealed: _Sealed, header: PacketHeader) -> dict[int, bytes]:
    """The staged streams' ciphertext, if together they are small enough to send inline."""
    if sum(header.streams[i].length for i in sealed.staged) > INLINE_BYTES:
        return {}
    return {i: path.read_bytes() for i, path in sealed.staged.items()}


def _upload(client: Client, out: Outgoing, sealed: _Sealed, header: PacketHeader,
            *, progress: ProgressFactory, skip: Collection[int] = ()) -> list[int]:
    entries = []
    with progress("uploading", sum(s.length for s in header.streams)) as advance:
        for index, digest in enumerate(header.streams):
            if index in skip:
                advance(digest.length)
                continue
            if index in sealed.staged:
                path = sealed.staged[index]
                stored = client.packets.upload_blob(path, digest, advance)
            else:
                replay, source = sealed.replays[index], out.attachments[index - 2]
                stored = client.packets.upload_chunks(
                    digest, functools.partial(_replayed, replay, source, advance))
            entries.append(stored.ledger.index)
    return entries


def send_packet(client: Client, keys: KeyHolder, sender_id: str, out: Outgoing, *,
                workdir: Path | None = None,
                progress: ProgressFactory = no_progress) -> SentPacket:
    """Seal, upload and submit a packet; return what the server recorded.

    The manifest's and message's ciphertext is staged in a temporary
    directory under ``workdir`` (default: the system's), deleted afterwards
    whatever happens; attachments are encrypted again as they upload, and
    must not change until then (:class:`UsageError` if one does).
    """
    recipients = recipient_keys(client, out.recipients)
    with tempfile.TemporaryDirectory(prefix="cadena-send-", dir=workdir) as tmp:
        sealed = _seal(keys, sender_id, recipients, out, work=Path(tmp), progress=progress)
        header = PacketHeader.from_bytes(sealed.envelope.header)
        inline = _small_staged(sealed, header)
        entries = _upload(client, out, sealed, header, progress=progress, skip=inline)
        try:
            created = client.packets.submit(sealed.envelope, inline)
        except ProblemError as exc:
            if not inline or exc.status != 413:
                raise
            # The server takes smaller submission bodies: upload those streams too.
            entries += _upload(client, out, sealed, header, progress=progress,
                               skip=set(range(len(header.streams))) - set(inline))
            created = client.packets.submit(sealed.envelope)
    if created.id != header.packet_id or created.sender_id != sender_id:
        raise VerificationFailed(f"the server recorded packet {created.id} from "
                                 f"{created.sender_id}, not {header.packet_id} from {sender_id}")
    return SentPacket(created, header, recipients, entries)


@dataclass
class FetchedFile:
    """One decrypted file: what it is, where it is, its verified plaintext digest."""

    label: str
    path: Path
    digest: StreamDigest


@dataclass
class FetchedPacket:
    """A fetched, verified and decrypted packet."""

    read: PacketRead
    header: PacketHeader
    opened: OpenedEnvelope
    directory: Path
    files: list[FetchedFile] = field(default_factory=list)
    receipt: ReceiptCreated | None = None
    receipt_existed: bool = False
    download_entries: list[int] = field(default_factory=list)


def open_remote(client: Client, me: str, keys: KeyHolder, read: PacketRead
                ) -> tuple[PacketHeader, OpenedEnvelope, list[int]]:
    """Verify a retrieved packet and open its envelope with the manifest (stream 0)."""
    if read.wrapped_key is None and read.key_share is None:
        raise UsageError(f"the server delivers no key for you in packet {read.id} "
                         "(an originator sees metadata only)")
    header, sender = verified_header(client.liaisons, read)
    share = (verified_share(client.liaisons, read, header, read.key_share)
             if read.key_share is not None else None)
    wrapped = {me: read.wrapped_key} if read.wrapped_key is not None else {}
    envelope = Envelope(read.header, read.signature, wrapped)
    manifest = header.streams[0]
    reader = client.packets.open_stream(read.id, 0, manifest.length, manifest.sha256)
    try:
        opened = open_envelope(envelope, sender, me, keys, cast(BinaryIO, reader), share=share)
    except CryptoError as exc:
        raise VerificationFailed(f"packet {read.id} does not open: {type(exc).__name__}: "
                                 f"{exc}") from exc
    finally:
        reader.close()
    return header, opened, reader.ledger_indexes


def _targets(opened: OpenedEnvelope, staging: Path) -> list[tuple[int, str, Path]]:
    targets = [(1, "message", staging / "message.txt")]
    if opened.statement.attachments:
        (staging / "attachments").mkdir(mode=PRIVATE_DIR)
    for i, attachment in enumerate(opened.statement.attachments):
        targets.append((i + 2, attachment.name, staging / "attachments" / attachment.name))
    return targets


def _decrypt_all(client: Client, got: FetchedPacket, staging: Path, fsync: bool,
                 *, progress: ProgressFactory) -> None:
    header = got.header
    total = sum(s.length for s in header.streams[1:])
    with progress("downloading", total) as advance:
        for index, label, path in _targets(got.opened, staging):
            stream = header.streams[index]
            reader = client.packets.open_stream(got.read.id, index, stream.length,
                                                stream.sha256, progress=advance)
            try:
                digest = decrypt_to_path(got.opened, index, cast(BinaryIO, reader), path,
                                         fsync=fsync)
            except CryptoError as exc:
                raise VerificationFailed(f"{label} (stream {index}) of packet {got.read.id} "
                                         f"fails verification: {type(exc).__name__}: "
                                         f"{exc}") from exc
            finally:
                reader.close()
            got.download_entries += reader.ledger_indexes
            got.files.append(FetchedFile(label, got.directory / path.relative_to(staging),
                                         digest))


def _private_parents(path: Path) -> None:
    """Create ``path`` and its missing parents 0700 (exact, whatever the umask)."""
    if path.exists():
        return
    _private_parents(path.parent)
    try:
        path.mkdir(mode=PRIVATE_DIR)
    except FileExistsError:
        return
    path.chmod(PRIVATE_DIR)


def _write_record(got: FetchedPacket, path: Path) -> None:
    # What a recipient may later disclose to a court: the signed header and the
    # sender-signed inner statement binding the packet id to plaintext digests.
    record = {
        "packet_id": got.read.id, "sender_id": got.read.sender_id,
        "sender_key_id": got.read.sender_key_id,
        "header": base64.b64encode(got.read.header).decode(),
        "header_signature": base64.b64encode(got.read.signature).decode(),
        "statement": base64.b64encode(got.opened.statement_bytes).decode(),
        "statement_signature": base64.b64encode(got.opened.statement_signature).decode(),
        "files": [{"name": f.label, "path": str(f.path.relative_to(got.directory)),
                   "length": f.digest.length, "sha256": f.digest.sha256} for f in got.files],
    }
    text = json.dumps(record, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, PRIVATE_FILE)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)


def fetch_packet(client: Client, me: str, keys: KeyHolder, packet_id: str, *, directory: Path,
                 receipt: bool = True, fsync: bool = True,
                 progress: ProgressFactory = no_progress) -> FetchedPacket:
    """Retrieve, verify, decrypt into ``directory`` (created; must not exist) and receipt.

    Files appear only once every stream verified: they are decrypted into a
    staging directory beside ``directory``, which is then renamed. On any
    fault nothing is left behind and :class:`VerificationFailed` (or the
    server's refusal) is raised.
    """
    if directory.exists():
        raise UsageError(f"{directory} exists already; choose another --out")
    read = client.packets.retrieve(packet_id)
    header, opened, entries = open_remote(client, me, keys, read)
    _private_parents(directory.parent)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".partial",
                                    dir=directory.parent))
    got = FetchedPacket(read, header, opened, directory, download_entries=entries)
    try:
        _decrypt_all(client, got, staging, fsync, progress=progress)
        _write_record(got, staging / RECORD_NAME)
        os.rename(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if receipt:
        signed = make_receipt(opened, me, keys)
        try:
            got.receipt = client.packets.add_receipt(read.id, signed.receipt, signed.signature)
        except Conflict:
            got.receipt_existed = True
    return got
