"""Checks of the signed objects: header, key enrolments, receipts, shares, statement, seal.

Signatures are verified before anything they cover is parsed or believed
(``crypto.verify_*``). Each liaison key used comes with the ledger entry
that enrolled it (``liaison.enrol`` or ``key.rotate``), proven like every
other entry, so a court need not trust a directory for any key.
"""

from __future__ import annotations

import base64
import hashlib

from client.certificate.context import Context, Failed, Skipped
from client.certificate.messages import M, Message
from crypto import (
    CryptoError,
    KeyShare,
    LiaisonPublicKeys,
    Party,
    Receipt,
    verify_header,
    verify_key_share,
    verify_receipt,
    verify_statement,
)
from custody import KeyRecord, seal_key, verify_seal
from ledger import Entry, LedgerError

ENROLMENT_ACTIONS = ("liaison.enrol", "key.rotate")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _key(ctx: Context, party: Party, what: Message) -> LiaisonPublicKeys:
    record = ctx.keys.get(party.key_id)
    if record is None or record.liaison != party.id:
        raise Failed(M("the certificate holds no enrolled key %(key)s of %(liaison)s (%(what)s)",
                       key=party.key_id, liaison=party.id, what=what))
    return record.keys


def _check_enrolment(record: KeyRecord, entry: Entry | None) -> None:
    key, liaison = record.keys.key_id, record.liaison
    if entry is None:
        raise Failed(M("key %(key)s of %(liaison)s: its enrolment entry %(index)s is not in "
                       "the certificate", key=key, liaison=liaison, index=record.enrolment))
    if (entry.outcome != "granted" or entry.action not in ENROLMENT_ACTIONS
            or dict(entry.subject) != {"type": "liaison", "id": record.liaison}
            or entry.details.get("key_id") != record.keys.key_id):
        raise Failed(M("key %(key)s of %(liaison)s: entry %(index)s does not enrol this key for "
                       "this liaison", key=key, liaison=liaison, index=entry.index))


def check_keys(ctx: Context) -> Message:
    """Every key set comes with the granted ledger entry that enrolled it."""
    enrolments = ctx.enrolments
    if enrolments is None:
        raise Skipped(M("needs the ledger entries"))
    for record in ctx.bundle.certificate.keys:
        _check_enrolment(record, enrolments.get(record.enrolment))
        if record.keys.key_id in ctx.keys:
            raise Failed(M("key %(key)s is listed twice", key=record.keys.key_id))
        ctx.keys[record.keys.key_id] = record
    return M("%(keys)s", keys=tuple(
        M("%(liaison)s (key %(key)s…, enrolled at entry %(index)s)", liaison=r.liaison,
          key=r.keys.key_id[:8], index=r.enrolment) for r in ctx.bundle.certificate.keys))


def check_header(ctx: Context) -> Message:
    """The packet header verifies with the sender's enrolled key and names this packet."""
    cert = ctx.bundle.certificate
    for record in cert.keys:
        try:
            header = verify_header(cert.header.data, cert.header.signature, record.keys)
        except CryptoError:
            continue
        if header.packet_id != cert.packet_id:
            raise Failed(M("the header is of packet %(packet)s, not %(expected)s",
                           packet=header.packet_id, expected=cert.packet_id))
        if header.sender.id != record.liaison or record.keys.key_id not in ctx.keys:
            raise Failed(M("the header's signer is not the enrolled sender it names"))
        ctx.header = header
        return M("signed by %(liaison)s (key %(key)s)", liaison=header.sender.id,
                 key=header.sender.key_id)
    raise Failed(M("the header signature verifies with no key in the certificate"))


def _event_with(events: list[Entry], action: str, signature: bytes) -> Entry:
    found = [e for e in events if e.action == action and e.outcome == "granted"
             and e.signature == _b64(signature)]
    if len(found) != 1:
        raise Failed(M("no single %(action)s entry carries this signature", action=action))
    return found[0]


def check_receipts(ctx: Context) -> Message:
    """Each receipt: the recipient's signature, this packet's digests, its ledger entry."""
    header, events = ctx.need_header(), ctx.need_events()
    header_sha = hashlib.sha256(ctx.bundle.certificate.header.data).hexdigest()
    digests = tuple(s.sha256 for s in header.streams)
    for signed in ctx.bundle.certificate.receipts:
        try:
            party = _party_of_receipt(signed.data)
            receipt = verify_receipt(signed.data, signed.signature, _key(ctx, party, M("receipt")))
        except CryptoError as exc:
            raise Failed(M("a receipt does not verify: %(reason)s", reason=str(exc))) from None
        if (receipt.packet_id, receipt.header_sha256, receipt.ciphertext_sha256) != (
                header.packet_id, header_sha, digests):
            raise Failed(M("the receipt of %(liaison)s names another packet or content",
                           liaison=party.id))
        entry = _event_with(events, "packet.receipt", signed.signature)
        if (entry.actor is None or entry.actor.liaison != party.id
                or entry.details.get("receipt_sha256") != hashlib.sha256(signed.data).hexdigest()):
            raise Failed(M("entry %(index)s does not record the receipt of %(liaison)s",
                           index=entry.index, liaison=party.id))
        ctx.receipts.append(receipt)
    _all_present(events, "packet.receipt", len(ctx.bundle.certificate.receipts))
    if not ctx.receipts:
        return M("0 signed receipts: none")
    return M("%(count)s signed receipts: %(names)s", count=len(ctx.receipts),
             names=", ".join(r.recipient.id for r in ctx.receipts))


def _party_of_receipt(data: bytes) -> Party:
    return Receipt.from_bytes(data).recipient


def _all_present(events: list[Entry], action: str, count: int) -> None:
    logged = sum(e.action == action and e.outcome == "granted" for e in events)
    if logged != count:
        raise Failed(M("%(logged)s granted %(action)s entries but %(count)s signed objects",
                       logged=logged, action=action, count=count))


def check_shares(ctx: Context) -> Message:
    """Each key share: the sharer's signature, this packet, its ledger entry."""
    header, events = ctx.need_header(), ctx.need_events()
    header_sha = hashlib.sha256(ctx.bundle.certificate.header.data).hexdigest()
    names = []
    for signed in ctx.bundle.certificate.shares:
        try:
            sharer = KeyShare.from_bytes(signed.data).sharer
            share = verify_key_share(signed.data, signed.signature, _key(ctx, sharer, M("share")))
        except CryptoError as exc:
            raise Failed(M("a key share does not verify: %(reason)s", reason=str(exc))) from None
        if (share.packet_id, share.header_sha256) != (header.packet_id, header_sha):
            raise Failed(M("the share by %(liaison)s names another packet", liaison=sharer.id))
        entry = _event_with(events, "packet.share", signed.signature)
        if (entry.actor is None or entry.actor.liaison != sharer.id
                or entry.details.get("recipient") != share.recipient.id
                or entry.details.get("recipient_key_id") != share.recipient.key_id):
            raise Failed(M("entry %(index)s does not record the share by %(liaison)s",
                           index=entry.index, liaison=sharer.id))
        names.append(f"{sharer.id} → {share.recipient.id}")
    _all_present(events, "packet.share", len(ctx.bundle.certificate.shares))
    if not names:
        return M("0 key shares")
    return M("%(count)s key shares: %(names)s", count=len(names), names=", ".join(names))


def check_statement(ctx: Context) -> Message:
    """The disclosed statement: the sender's signature, bound by the discloser's receipt."""
    disclosure = ctx.bundle.disclosure
    if disclosure is None:
        raise Skipped(M("no statement disclosed"))
    header = ctx.need_header()
    try:
        statement = verify_statement(disclosure.statement.data, disclosure.statement.signature,
                                     _key(ctx, header.sender, M("statement")))
    except CryptoError as exc:
        raise Failed(M("the statement does not verify with the sender's key: %(reason)s",
                       reason=str(exc))) from None
    if statement.packet_id != header.packet_id:
        raise Failed(M("the statement is about another packet"))
    digest = hashlib.sha256(disclosure.statement.data).hexdigest()
    if not any(r.recipient.id == disclosure.disclosed_by and r.statement_sha256 == digest
               for r in ctx.receipts):
        raise Failed(M("no signed receipt of %(liaison)s binds this statement",
                       liaison=disclosure.disclosed_by))
    ctx.statement = statement
    return M("signed by the sender, bound by the receipt of %(liaison)s; %(count)s attachment "
             "digests", liaison=disclosure.disclosed_by, count=len(statement.attachments))


def check_evidence(ctx: Context, name: str, digest: str) -> Message:
    """An evidence file's SHA-256 is one the sender signed in the statement."""
    statement = ctx.statement
    if statement is None:
        raise Failed(M("no verified statement to compare with (disclose the statement)"))
    if statement.message.sha256 == digest:
        return M("%(digest)s  matches the message", digest=digest)
    for attachment in statement.attachments:
        if attachment.sha256 == digest:
            return M("%(digest)s  matches attachment %(name)s", digest=digest,
                     name=repr(attachment.name))
    raise Failed(M("%(digest)s  matches no digest the sender signed", digest=digest))


def check_seal(ctx: Context) -> Message:
    """The centre's seal over the certificate, by the trusted (or the named) key."""
    trusted = ctx.trust.seal_key
    if trusted is None:
        try:
            trusted = seal_key(ctx.bundle.seal.key)
        except LedgerError as exc:
            raise Failed(M("the seal key is malformed: %(reason)s", reason=str(exc))) from None
        ctx.notes.append(M("the seal key was taken from the certificate itself (%(key)s); compare "
                           "it with the centre's published key or give --trusted-key",
                           key=str(trusted)))
    try:
        verify_seal(ctx.bundle, trusted)
    except LedgerError as exc:
        raise Failed(M("%(reason)s", reason=str(exc))) from None
    return M("sealed by %(key)s", key=str(trusted))
