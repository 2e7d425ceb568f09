"""What the client checks itself instead of believing the server.

The server relays bytes it cannot forge: the sender's signed header, the
sender-signed inner statement (inside the encryption), key shares and
receipts signed by liaisons. Everything the server says *about* them (its
metadata, which key a liaison has) is checked here against those signatures:

* the sender's key set is looked up by the key id the header names, in the
  sender's key history (``/v1/liaisons/{id}/keys``); the key id is recomputed
  from the public keys, so the directory cannot hand over another key under
  that id, and a key revoked before the packet was created is refused; the
  key then passes the profile's checks (``LiaisonsAPI.pin``): with trust
  roots, the witnessed ledger must prove it (:mod:`client.transparency`);
* the header signature is verified before the header is parsed
  (``crypto.verify_header``), and every metadata field the server served is
  compared with the signed one;
* a key share is verified with the sharer's key and must name this packet;
* receipts are verified with each recipient's key and must name this packet,
  its header digest and every ciphertext digest.

Any fault raises :class:`VerificationFailed` (exit code 1); nothing is returned
that was not verified (fail closed).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import ClassVar

from client.errors import EXIT_VERIFICATION, ClientError
from client.models import KeyInfo
from client.packet_models import KeyShareInfo, PacketRead, ReceiptInfo
from client.resources import LiaisonsAPI
from crypto import (
    CryptoError,
    KeyShare,
    LiaisonPublicKeys,
    PacketHeader,
    Receipt,
    verify_header,
    verify_key_share,
    verify_receipt,
)


class VerificationFailed(ClientError):
    """What the server delivered does not verify: a forgery, a substitution or damage."""

    exit_code: ClassVar[int] = EXIT_VERIFICATION


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _key_info(liaisons: LiaisonsAPI, liaison_id: str, key_id: str
              ) -> tuple[LiaisonPublicKeys, KeyInfo]:
    for info in liaisons.keys(liaison_id):
        if info.key_id != key_id:
            continue
        try:
            keys = LiaisonPublicKeys.from_json({"sign": info.signing_public,
                                                "box": info.encryption_public})
        except CryptoError as exc:
            raise VerificationFailed(f"the directory's key {key_id} of {liaison_id} is not a "
                                     f"valid key set: {exc}") from exc
        if keys.key_id != key_id:
            raise VerificationFailed(f"the directory serves keys with id {keys.key_id} as key "
                                     f"{key_id} of {liaison_id}")
        liaisons.pin(liaison_id, keys)
        return keys, info
    raise VerificationFailed(f"{liaison_id} has no key {key_id} in the directory")


def _check_not_revoked(info: KeyInfo, liaison_id: str, at: str) -> None:
    if info.revoked_at is not None and info.revoked_at <= _parse_time(at):
        raise VerificationFailed(f"key {info.key_id} of {liaison_id} was revoked on "
                                 f"{info.revoked_at:%Y-%m-%d %H:%M}Z, before it signed at {at}")


def liaison_key(liaisons: LiaisonsAPI, liaison_id: str, key_id: str,
                at: str | None = None) -> LiaisonPublicKeys:
    """The key set ``key_id`` of ``liaison_id`` from their key history, checked.

    ``at`` (RFC 3339) is when the key signed: a key revoked before then is refused.
    """
    keys, info = _key_info(liaisons, liaison_id, key_id)
    if at is not None:
        _check_not_revoked(info, liaison_id, at)
    return keys


def _signed_fields(header: PacketHeader) -> dict[str, object]:
    meta = header.meta
    return {
        "id": header.packet_id, "channel_id": meta.channel_id, "sender_id": header.sender.id,
        "sender_key_id": header.sender.key_id, "recipients": list(header.recipient_ids),
        "classification": str(meta.classification), "handling": str(meta.handling),
        "evaluation": meta.evaluation, "case_reference": meta.case_reference,
        "legal_basis": meta.legal_basis, "in_reply_to": meta.in_reply_to,
        "urgency": None if meta.urgency is None else str(meta.urgency),
        "created": _parse_time(header.created),
        "due": None if meta.due is None else _parse_time(meta.due),
        "streams": [(s.length, s.sha256) for s in header.streams],
    }


def _served_fields(read: PacketRead) -> dict[str, object]:
    return {
        "id": read.id, "channel_id": read.channel_id, "sender_id": read.sender_id,
        "sender_key_id": read.sender_key_id, "recipients": list(read.recipients),
        "classification": read.classification, "handling": read.handling,
        "evaluation": read.evaluation, "case_reference": read.case_reference,
        "legal_basis": read.legal_basis, "in_reply_to": read.in_reply_to,
        "urgency": read.urgency, "created": read.created, "due": read.due,
        "streams": [(s.length, s.sha256) for s in sorted(read.streams, key=lambda s: s.index)],
    }


def verified_header(liaisons: LiaisonsAPI, read: PacketRead
                    ) -> tuple[PacketHeader, LiaisonPublicKeys]:
    """Verify the served header with the sender's key; check the server's metadata against it.

    Returns the signed header and the sender's key set.
    """
    sender, info = _key_info(liaisons, read.sender_id, read.sender_key_id)
    try:
        header = verify_header(read.header, read.signature, sender)
    except CryptoError as exc:
        raise VerificationFailed(f"packet {read.id}: the sender's signature over the header "
                                 f"does not verify ({exc})") from exc
    if hashlib.sha256(read.header).hexdigest() != read.header_sha256:
        raise VerificationFailed(f"packet {read.id}: the server misstates the header digest")
    signed, served = _signed_fields(header), _served_fields(read)
    for name, value in signed.items():
        if served[name] != value:
            raise VerificationFailed(f"packet {read.id}: the server says {name} is "
                                     f"{served[name]!r}, the signed header says {value!r}")
    _check_not_revoked(info, read.sender_id, header.created)
    return header, sender


def verified_share(liaisons: LiaisonsAPI, read: PacketRead, header: PacketHeader,
                   info: KeyShareInfo) -> KeyShare:
    """Verify the key share through which the caller holds the packet."""
    claimed = _claimed_share(info)
    sharer = liaison_key(liaisons, info.sharer_id, claimed.sharer.key_id, at=claimed.created)
    try:
        share = verify_key_share(info.share, info.signature, sharer)
    except CryptoError as exc:
        raise VerificationFailed(f"packet {read.id}: the key share from {info.sharer_id} does "
                                 f"not verify ({exc})") from exc
    if share.sharer.id != info.sharer_id or share.packet_id != header.packet_id or \
            share.header_sha256 != hashlib.sha256(read.header).hexdigest():
        raise VerificationFailed(f"packet {read.id}: the key share is for another packet "
                                 "or sharer")
    return share


def _claimed_share(info: KeyShareInfo) -> KeyShare:
    # Parsed unverified only to learn which key to verify it with.
    try:
        return KeyShare.from_bytes(info.share)
    except CryptoError as exc:
        raise VerificationFailed(f"the key share is malformed ({exc})") from exc


def verified_receipt(liaisons: LiaisonsAPI, header: PacketHeader, header_bytes: bytes,
                     info: ReceiptInfo) -> Receipt:
    """Verify a stored receipt with the recipient's key; it must name this exact packet."""
    keys = liaison_key(liaisons, info.recipient_id, info.key_id)
    try:
        receipt = verify_receipt(info.receipt, info.signature, keys)
    except CryptoError as exc:
        raise VerificationFailed(f"the receipt of {info.recipient_id} does not verify "
                                 f"({exc})") from exc
    expected = (header.packet_id, info.recipient_id, hashlib.sha256(header_bytes).hexdigest(),
                tuple(s.sha256 for s in header.streams))
    found = (receipt.packet_id, receipt.recipient.id, receipt.header_sha256,
             receipt.ciphertext_sha256)
    if found != expected:
        raise VerificationFailed(f"the receipt of {info.recipient_id} is for another packet "
                                 "or other content")
    return receipt
