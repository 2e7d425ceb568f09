"""Rules for packets once submitted: listing, retrieval, download, withdrawal, threads.

Every function checks the clearance gate at the instant of the request
(``app.packets.access``) and appends exactly one ledger entry for the action;
refusals raise and are logged by the session dependency. Nothing here commits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from app.auth.service import Principal
from app.blobs import BlobStorage, ByteRange, StoredBlob, parse_range
from app.errors import NotFound, Unavailable
from app.identity import repository as liaisons
from app.ledger import Reason, deny, draft, now, record
from app.models.packet import Packet, PacketStatus, PacketStream
from app.packets import listing as pages
from app.packets import repository as repo
from app.packets.access import (
    NO_CLEARANCE,
    Authenticated,
    PacketAccess,
    RetrievalAccess,
    packet_access,
    require_prosecutor,
    retrieval_access,
)
from app.packets.cursor import decode_cursor, encode_cursor
from app.packets.errors import NoClearance, OriginatorOnly, PacketConflict
from app.packets.listing import ListedPacket, PacketFilter
from app.packets.repository import StreamRef
from ledger import AppendedEntry

MAX_THREAD_DEPTH = 100


PacketMetadata = Packet | repo.PacketRecord | ListedPacket
"""What a packet's summary shows: an ORM ``Packet``, or a record read with Core."""


@dataclass(frozen=True)
class PacketView:
    """A packet's metadata as a caller sees it."""

    packet: PacketMetadata
    recipients: list[str]
    overdue: bool


@dataclass(frozen=True)
class Page:
    """A page of a listing and the entry that logged it."""

    views: list[PacketView]
    next_cursor: str | None
    entry: AppendedEntry


@dataclass(frozen=True)
class Retrieved:
    """A granted retrieval: the access decision, the streams, the entry."""

    access: RetrievalAccess
    view: PacketView
    streams: Sequence[StreamRef]
    entry: AppendedEntry


@dataclass(frozen=True)
class Download:
    """A granted download: which blob, which bytes, and the entry."""

    stream: PacketStream
    byte_range: ByteRange | None
    entry: AppendedEntry


def record_upload(session: Session, by: Principal, blob: StoredBlob) -> AppendedEntry:
    """Log a ciphertext blob upload (``blob.upload``)."""
    return record(session, draft(by.actor, "blob.upload", {"type": "blob", "id": blob.sha256},
                                 details={"size": blob.size, "created": blob.created}))


def overdue(packet: PacketMetadata, moment: datetime, *, answered: bool) -> bool:
    """Whether a request is overdue: its due date passed while active, and no addressee
    (header recipient) has ``answered`` it."""
    return (packet.due is not None and packet.due < moment
            and packet.status == PacketStatus.ACTIVE and not answered)


def views(session: Session, packets: Sequence[Packet], moment: datetime,
          recipients: Mapping[str, list[str]] | None = None) -> list[PacketView]:
    """Metadata views: header recipients, and whether a request is overdue.

    A request is overdue when its due date passed while active and no
    addressee (header recipient) has answered it. ``recipients``: the header
    recipients by packet id, when the caller has read them already.
    """
    if recipients is None:
        recipients = repo.recipients(session, [p.id for p in packets])
    pending = [p.id for p in packets if p.due is not None]
    answered = repo.answered(session, pending)
    return [PacketView(p, recipients[p.id], overdue(p, moment, answered=p.id in answered))
            for p in packets]


def new_view(packet: PacketMetadata, recipient_ids: Sequence[str],
             moment: datetime) -> PacketView:
    """The view of a packet just stored with these header recipients (no query).

    Nothing can have answered it yet, so it is overdue only if it came in past due.
    """
    return PacketView(packet, sorted(set(recipient_ids)),
                      overdue(packet, moment, answered=False))


def listing(session: Session, by: Principal, wanted: PacketFilter, limit: int,
            *, cursor: str | None, read: list[ListedPacket] | None = None) -> Page:
    """A page of the caller's inbox or sent box (metadata only); logged once.

    ``read``: the page (``limit + 1`` packets at most), already read with the token
    for this ``wanted``, ``cursor`` and ``limit`` (``app.packets.access.ListingCredentials``).
    """
    subject = {"type": "packets", "id": wanted.box}
    require_prosecutor(by, "packet.list", subject)
    after = decode_cursor(cursor) if cursor else None
    moment = now()
    level = by.clearance_level  # read with the token, in this transaction
    if level is None:
        clearance = liaisons.clearance_in_force(session, by.liaison_id, moment)
        level = clearance.level if clearance is not None else None
    if level is None:
        raise deny(NoClearance, NO_CLEARANCE, by.actor, "packet.list", subject,
                   Reason.NO_CLEARANCE)
    found = read if read is not None else pages.listing(
        session, by.liaison_id, level, wanted, after=after, limit=limit + 1)
    page = found[:limit]
    shown = [PacketView(p, p.recipients, overdue(p, moment, answered=p.answered)) for p in page]
    filters = {k: v for k, v in {
        "channel": wanted.channel_id, "case_reference": wanted.case_reference,
        "since": wanted.since.isoformat() if wanted.since else None,
        "until": wanted.until.isoformat() if wanted.until else None,
        "status": wanted.status.value if wanted.status else None}.items() if v is not None}
    # Reads first, append last: the append locks the ledger head until the commit.
    entry = record(session, draft(by.actor, "packet.list", subject,
                                  details={"returned": len(page), **filters}))
    last = page[-1] if len(found) > limit else None
    next_cursor = encode_cursor(last.submitted_at, last.id) if last is not None else None
    return Page(shown, next_cursor, entry)


def retrieve(session: Session, by: Principal, packet_id: str,
             *, read: Authenticated | None = None) -> Retrieved:
    """Metadata, envelope parts and the caller's wrapped key (key delivery); logged.

    One entry, ``packet.retrieve``, whose details say whether a key was
    delivered and to which key id. ``read``: the packet's facts, read with the token.
    """
    access, contents = retrieval_access(session, by, packet_id, "packet.retrieve", read=read)
    held = access.holding
    details: dict[str, object] = {"key_delivered": held is not None}
    if held is not None:
        details |= {"key_id": held.key_id, "via": held.origin.value}
    view = PacketView(access.packet, contents.recipients,
                      overdue(access.packet, now(), answered=contents.answered))
    # Reads first, append last: on PostgreSQL the ledger head stays locked from the
    # append to the commit, and every appender in every process waits for it.
    entry = record(session, draft(by.actor, "packet.retrieve", access.subject, details=details))
    return Retrieved(access, view, contents.streams, entry)


def download(session: Session, store: BlobStorage, by: Principal, packet_id: str, *,
             index: int, range_header: str | None) -> Download:
    """Grant a download of ciphertext stream ``index`` (or a byte range of it); logged."""
    access = packet_access(session, by, packet_id, "packet.download", deliver=True)
    stream = repo.stream(session, packet_id, index)
    if stream is None:
        raise NotFound(f"the packet has no stream {index}",
                       subject={"type": "packet", "id": packet_id})
    byte_range = parse_range(range_header, stream.length)
    if stream.content is None and store.size(stream.sha256) != stream.length:
        raise Unavailable("the ciphertext of this stream is not available")
    details: dict[str, object] = {"stream": index, "bytes": stream.length}
    if byte_range is not None:
        details |= {"range": f"{byte_range.first}-{byte_range.last}",
                    "bytes": byte_range.length}
    entry = record(session, draft(by.actor, "packet.download", access.subject, details=details))
    return Download(stream, byte_range, entry)


def withdraw(session: Session, by: Principal, packet_id: str,
             reason: str) -> tuple[PacketView, AppendedEntry]:
    """The originator withdraws a packet: no further key delivery; logged."""
    action = "packet.withdraw"
    access = packet_access(session, by, packet_id, action, deliver=False)
    packet = access.packet
    if not access.is_sender:
        raise deny(OriginatorOnly, "only the originator may withdraw a packet", by.actor,
                   action, access.subject, Reason.ORIGINATOR_ONLY)
    if packet.status == PacketStatus.WITHDRAWN:
        raise deny(PacketConflict, "the packet is already withdrawn", by.actor, action,
                   access.subject, Reason.PACKET_WITHDRAWN)
    moment = now()
    packet.status = PacketStatus.WITHDRAWN
    packet.withdrawn_at = moment
    packet.withdrawal_reason = reason
    session.flush()
    entry = record(session, draft(by.actor, action, access.subject, details={"reason": reason}))
    return views(session, [packet], moment)[0], entry


def _visible(session: Session, by: Principal, access: PacketAccess, packet: Packet) -> bool:
    return (packet.channel_id == access.packet.channel_id
            and packet.classification <= access.level
            and repo.is_party(session, packet, by.liaison_id))


def thread(session: Session, by: Principal,
           packet_id: str) -> tuple[str, list[PacketView], AppendedEntry]:
    """The request a packet belongs to and every reply the caller may see; logged."""
    access = packet_access(session, by, packet_id, "packet.thread", deliver=False)
    root = access.packet
    for _ in range(MAX_THREAD_DEPTH):
        parent = repo.get(session, root.in_reply_to) if root.in_reply_to else None
        if parent is None or not _visible(session, by, access, parent):
            break
        root = parent
    members, frontier = [root], [root.id]
    while frontier and len(members) < 10 * MAX_THREAD_DEPTH:
        replies = [p for p in repo.replies_to(session, frontier)
                   if _visible(session, by, access, p)]
        members.extend(replies)
        frontier = [p.id for p in replies]
    members.sort(key=lambda p: (p.submitted_at, p.id))
    entry = record(session, draft(by.actor, "packet.thread", access.subject,
                                  details={"root": root.id, "returned": len(members)}))
    return root.id, views(session, members, now()), entry
