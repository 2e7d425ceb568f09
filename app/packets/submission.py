"""Submitting a packet: verify the signed envelope and every rule, store, log.

Order: parse the envelope strictly; verify the header signature with the
caller's own current key *before* parsing the header (``verify_envelope``);
then the caller must be the signed sender, the packet id unused, the sender
cleared for the channel and classification, every recipient eligible, the
reply (if any) visible to the sender in the same channel, and every
ciphertext stream present in the blob store with the signed digest and
length. Only then is anything written to the database; the ``packet.submit``
entry carries the sender's header signature.

Streams sent inline (small packets: one request instead of an upload per
stream) are checked against the header's digests as soon as it is verified,
and kept in their ``packet_streams`` rows: committed with the packet, in the
same transaction and the same fsync, instead of a blob file each.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from app.auth.service import Principal
from app.blobs import BlobStorage
from app.clearances.schemas import level_name
from app.events.service import notify
from app.identity import repository as liaisons
from app.ledger import Hidden, Reason, deny, draft, now, record
from app.models.identity import Level
from app.models.packet import KeyOrigin, PacketStatus
from app.packets import repository as repo
from app.packets.access import (
    eligibility_refusal,
    packet_subject,
    recipient_refusal,
    require_prosecutor,
    submission_refusal,
)
from app.packets.errors import (
    InlineStreamMismatch,
    InvalidDue,
    InvalidEnvelope,
    InvalidReply,
    MissingStream,
    NotAMember,
    NotTheSender,
    PacketConflict,
    SignatureRefused,
)
from app.packets.schemas import InlineStream
from app.text import unsafe_character
from crypto import (
    BadSignature,
    CryptoError,
    Envelope,
    FormatError,
    LiaisonPublicKeys,
    PacketHeader,
    verify_envelope,
)
from ledger import AppendedEntry

ACTION = "packet.submit"
MAX_LISTED_RECIPIENTS_BYTES = 16 * 1024


@dataclass(frozen=True)
class Submitted:
    """A stored packet and the ledger entry of its submission."""

    packet: repo.PacketRecord
    entry: AppendedEntry
    recipient_ids: tuple[str, ...]


def parse_time(text: str) -> datetime:
    """An RFC 3339 UTC time as the header carries it (``...Z``)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _parse(envelope_b64: str) -> Envelope:
    try:
        return Envelope.from_bytes(base64.b64decode(envelope_b64, validate=True))
    except (ValueError, CryptoError) as exc:
        raise InvalidEnvelope(f"the envelope is malformed: {exc}") from None


def _verify(by: Principal, key: liaisons.UsableKey | None, envelope: Envelope) -> PacketHeader:
    """The verified header; the caller's own usable key (``key``, the token's key set as
    read with the token) must have signed it."""
    unverified = {"type": "packet_header", "id": hashlib.sha256(envelope.header).hexdigest()}
    if key is None or key.liaison_id != by.liaison_id:
        raise deny(NotTheSender, "your key is not current", by.actor, ACTION, unverified,
                   Reason.KEY_NOT_CURRENT)
    public = LiaisonPublicKeys(signing=key.signing_public, encryption=key.encryption_public)
    try:
        header = verify_envelope(envelope, public)
    except BadSignature:
        raise deny(SignatureRefused, "the header signature does not verify with your key",
                   by.actor, ACTION, unverified, Reason.BAD_SIGNATURE) from None
    except FormatError as exc:
        raise InvalidEnvelope(f"the envelope is malformed: {exc}") from None
    if header.sender.id != by.liaison_id:
        raise deny(NotTheSender, "the header names another sender", by.actor, ACTION,
                   packet_subject(header.packet_id), Reason.NOT_THE_SENDER,
                   private=f"header sender is {header.sender.id}")
    return header


def _check_texts(header: PacketHeader) -> None:
    # crypto's header parser stays as lenient as when older packets were signed,
    # so their custody certificates still verify offline; new ones are refused here.
    for name in ("case_reference", "legal_basis"):
        value = getattr(header.meta, name)
        bad = unsafe_character(value) if value is not None else None
        if bad is not None:
            raise InvalidEnvelope(f"the header's {name} holds the control or bidirectional "
                                  f"formatting character U+{ord(bad):04X}")


def _check_due(header: PacketHeader, moment: datetime) -> None:
    # Bad input, not a refusal: a deadline that has passed cannot be asked for.
    # No allowance for clock skew: a due date is a person's deadline (days
    # ahead), not a clock reading, and the server's clock alone decides.
    due = header.meta.due
    if due is not None and parse_time(due) < moment:
        raise InvalidDue(f"the due date {due} has already passed (the server's time is "
                         f"{moment.strftime('%Y-%m-%dT%H:%M:%SZ')}); give a later one")


def _check_parties(session: Session, by: Principal, header: PacketHeader,
                   moment: datetime) -> None:
    """The packet id is unused, the sender cleared for the channel and classification,
    every recipient eligible (one query for all of it)."""
    subject = packet_subject(header.packet_id)
    channel_id = header.meta.channel_id
    facts = repo.submission_facts(session, header.packet_id, channel_id, by.liaison_id,
                                  recipient_ids=header.recipient_ids, moment=moment)
    if facts.packet_exists:
        raise deny(PacketConflict, "this packet id was already submitted", by.actor, ACTION,
                   subject, Reason.PACKET_ID_USED)
    sender = facts.eligibility.get(by.liaison_id)
    if facts.channel_min_level is None or sender is None:
        raise deny(Hidden, "no such channel", by.actor, ACTION, subject, Reason.NO_SUCH_CHANNEL,
                   private=f"channel {channel_id}")
    if not sender.is_member:
        raise deny(NotAMember, "you are not a member of this channel", by.actor, ACTION,
                   subject, Reason.NOT_A_MEMBER)
    classification = Level[header.meta.classification]
    refusal = submission_refusal(sender.level, classification, facts.channel_min_level)
    if refusal is not None:
        raise refusal.deny(by, ACTION, subject)
    for party in header.recipients:
        why = eligibility_refusal(facts.eligibility.get(party.id), party.key_id, channel_id,
                                  classification)
        if why is not None:
            raise recipient_refusal(by, ACTION, subject, party.id, why=why)


def _check_reply(session: Session, by: Principal, header: PacketHeader) -> None:
    if header.meta.in_reply_to is None:
        return
    parent = repo.get(session, header.meta.in_reply_to)
    if (parent is None or not repo.is_party(session, parent, by.liaison_id)
            or parent.channel_id != header.meta.channel_id):
        raise deny(InvalidReply, "in_reply_to names no packet you may answer in this channel",
                   by.actor, ACTION, packet_subject(header.packet_id),
                   Reason.INVALID_REPLY)


def _decode_inline(header: PacketHeader, inline: Sequence[InlineStream]) -> dict[int, bytes]:
    """The inline ciphertexts by stream index, each checked against the signed digest."""
    found: dict[int, bytes] = {}
    for item in inline:
        if item.index >= len(header.streams) or item.index in found:
            raise InlineStreamMismatch(f"stream {item.index} is not a stream of the header, "
                                       "or is sent twice")
        try:
            data = base64.b64decode(item.ciphertext, validate=True)
        except binascii.Error:
            raise InlineStreamMismatch(f"stream {item.index} is not valid base64") from None
        expected = header.streams[item.index]
        if len(data) != expected.length or hashlib.sha256(data).hexdigest() != expected.sha256:
            raise InlineStreamMismatch(f"stream {item.index} is not the ciphertext the header "
                                       "signs (length or SHA-256)")
        found[item.index] = data
    return found


def _check_streams(store: BlobStorage, header: PacketHeader,
                   inline: Mapping[int, bytes]) -> None:
    for index, expected in enumerate(header.streams):
        if index in inline:
            continue
        size = store.size(expected.sha256)
        if size is None:
            raise MissingStream(f"stream {index} ({expected.sha256}) has not been uploaded")
        if size != expected.length:
            raise MissingStream(f"stream {index} is stored with another length")


def _store(session: Session, by: Principal, envelope: Envelope, header: PacketHeader,
           *, moment: datetime, inline: Mapping[int, bytes]) -> repo.PacketRecord:
    meta = header.meta
    values: dict[str, Any] = {
        "id": header.packet_id, "channel_id": meta.channel_id, "sender_id": by.liaison_id,
        "sender_key_id": header.sender.key_id, "classification": int(Level[meta.classification]),
        "handling": str(meta.handling), "evaluation": meta.evaluation,
        "case_reference": meta.case_reference, "legal_basis": meta.legal_basis,
        "created": parse_time(header.created), "submitted_at": moment,
        "in_reply_to": meta.in_reply_to, "urgency": str(meta.urgency) if meta.urgency else None,
        "due": parse_time(meta.due) if meta.due else None, "header": envelope.header,
        "header_sha256": hashlib.sha256(envelope.header).hexdigest(),
        "signature": envelope.signature, "status": PacketStatus.ACTIVE,
        "withdrawn_at": None, "withdrawal_reason": None,
    }
    holdings = [{"packet_id": header.packet_id, "liaison_id": party.id, "key_id": party.key_id,
                 "origin": KeyOrigin.HEADER, "wrapped_key": envelope.wrapped_keys[party.id],
                 "added_at": moment} for party in header.recipients]
    streams = [{"packet_id": header.packet_id, "index": i, "sha256": s.sha256,
                "length": s.length, "content": inline.get(i)}
               for i, s in enumerate(header.streams)]
    repo.store_submitted(session, values, holdings, streams)
    # A plain record, not an ORM instance (nothing is added to the session: the rows are
    # inserted at commit), whose instrumented construction cost more than the record.
    return repo.PacketRecord(**values)


def _details(packet: repo.PacketRecord, header: PacketHeader) -> dict[str, object]:
    ids = list(header.recipient_ids)
    details: dict[str, object] = {
        "channel": packet.channel_id, "classification": Level(packet.classification).name,
        "handling": packet.handling, "header_sha256": packet.header_sha256,
        "recipient_count": len(ids), "streams": len(header.streams),
    }
    # The entry must stay small (ledger.format.entry.MAX_ENTRY_BYTES); the header, whose
    # SHA-256 is logged, names every recipient anyway.
    if len(json.dumps(ids)) <= MAX_LISTED_RECIPIENTS_BYTES:
        details["recipients"] = ids
    if packet.in_reply_to:
        details["in_reply_to"] = packet.in_reply_to
    return details


def submit(session: Session, store: BlobStorage, by: Principal, envelope_b64: str,
           *, inline: Sequence[InlineStream], key: liaisons.UsableKey | None) -> Submitted:
    """Verify, check and store a packet; append ``packet.submit`` with the sender's signature.

    ``inline``: streams sent with the envelope, kept in their stream rows. ``key``:
    the caller's token's key set if usable, read with the token in this transaction
    (``app.packets.access.SubmissionCredentials``).
    """
    require_prosecutor(by, ACTION, {"type": "packet", "id": "new"})
    envelope = _parse(envelope_b64)
    header = _verify(by, key, envelope)
    _check_texts(header)
    ciphertexts = _decode_inline(header, inline)
    moment = now()
    _check_due(header, moment)
    _check_parties(session, by, header, moment)
    _check_reply(session, by, header)
    _check_streams(store, header, ciphertexts)
    packet = _store(session, by, envelope, header, moment=moment, inline=ciphertexts)
    details = _details(packet, header)
    if ciphertexts:
        details["inline_streams"] = sorted(ciphertexts)
    entry = record(session, draft(
        by.actor, ACTION, packet_subject(packet.id),
        details=details, signature=base64.b64encode(envelope.signature).decode()))
    # Again under the ledger head lock, which a blob prune holds while it decides
    # (app.blob_prune): a blob pruned since the check above refuses the packet.
    _check_streams(store, header, ciphertexts)
    notify(session, [r.id for r in header.recipients], "reply" if packet.in_reply_to else "packet",
           packet.id, ledger_index=entry.index, data={"from": by.liaison_id,
                                                      "channel": packet.channel_id,
                                    "classification": level_name(packet.classification),
                                    "in_reply_to": packet.in_reply_to})
    return Submitted(packet, entry, header.recipient_ids)
