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


def _key(ctx: Context, party: Party, what: str) -> LiaisonPublicKeys:
    record = ctx.keys.get(party.key_id)
    if record is None or record.liaison != party.id:
        raise Failed(f"the certificate holds no enrolled key {party.key_id} of {party.id} "
                     f"({what})")
    return record.keys


def _check_enrolment(record: KeyRecord, entry: Entry | None) -> None:
    who = f"key {record.keys.key_id} of {record.liaison}"
    if entry is None:
        raise Failed(f"{who}: its enrolment entry {record.enrolment} is not in the certificate")
    if (entry.outcome != "granted" or entry.action not in ENROLMENT_ACTIONS
            or dict(entry.subject) != {"type": "liaison", "id": record.liaison}
            or entry.details.get("key_id") != record.keys.key_id):
        raise Failed(f"{who}: entry {entry.index} does not enrol this key for this liaison")


def check_keys(ctx: Context) -> str:
    """Every key set comes with the granted ledger entry that enrolled it."""
    enrolments = ctx.enrolments
    if enrolments is None:
        raise Skipped("needs the ledger entries")
    for record in ctx.bundle.certificate.keys:
        _check_enrolment(record, enrolments.get(record.enrolment))
        if record.keys.key_id in ctx.keys:
            raise Failed(f"key {record.keys.key_id} is listed twice")
        ctx.keys[record.keys.key_id] = record
    return ", ".join(f"{r.liaison} (key {r.keys.key_id[:8]}…, enrolled at entry {r.enrolment})"
                     for r in ctx.bundle.certificate.keys)


def check_header(ctx: Context) -> str:
    """The packet header verifies with the sender's enrolled key and names this packet."""
    cert = ctx.bundle.certificate
    for record in cert.keys:
        try:
            header = verify_header(cert.header.data, cert.header.signature, record.keys)
        except CryptoError:
            continue
        if header.packet_id != cert.packet_id:
            raise Failed(f"the header is of packet {header.packet_id}, not {cert.packet_id}")
        if header.sender.id != record.liaison or record.keys.key_id not in ctx.keys:
            raise Failed("the header's signer is not the enrolled sender it names")
        ctx.header = header
        return f"signed by {header.sender.id} (key {header.sender.key_id})"
    raise Failed("the header signature verifies with no key in the certificate")


def _event_with(events: list[Entry], action: str, signature: bytes) -> Entry:
    found = [e for e in events if e.action == action and e.outcome == "granted"
             and e.signature == _b64(signature)]
    if len(found) != 1:
        raise Failed(f"no single {action} entry carries this signature")
    return found[0]


def check_receipts(ctx: Context) -> str:
    """Each receipt: the recipient's signature, this packet's digests, its ledger entry."""
    header, events = ctx.need_header(), ctx.need_events()
    header_sha = hashlib.sha256(ctx.bundle.certificate.header.data).hexdigest()
    digests = tuple(s.sha256 for s in header.streams)
    for signed in ctx.bundle.certificate.receipts:
        try:
            party = _party_of_receipt(signed.data)
            receipt = verify_receipt(signed.data, signed.signature, _key(ctx, party, "receipt"))
        except CryptoError as exc:
            raise Failed(f"a receipt does not verify: {exc}") from None
        if (receipt.packet_id, receipt.header_sha256, receipt.ciphertext_sha256) != (
                header.packet_id, header_sha, digests):
            raise Failed(f"the receipt of {party.id} names another packet or content")
        entry = _event_with(events, "packet.receipt", signed.signature)
        if (entry.actor is None or entry.actor.liaison != party.id
                or entry.details.get("receipt_sha256") != hashlib.sha256(signed.data).hexdigest()):
            raise Failed(f"entry {entry.index} does not record the receipt of {party.id}")
        ctx.receipts.append(receipt)
    _all_present(events, "packet.receipt", len(ctx.bundle.certificate.receipts))
    return f"{len(ctx.receipts)} signed receipts: " + (
        ", ".join(r.recipient.id for r in ctx.receipts) or "none")


def _party_of_receipt(data: bytes) -> Party:
    return Receipt.from_bytes(data).recipient


def _all_present(events: list[Entry], action: str, count: int) -> None:
    logged = sum(e.action == action and e.outcome == "granted" for e in events)
    if logged != count:
        raise Failed(f"{logged} granted {action} entries but {count} signed objects")


def check_shares(ctx: Context) -> str:
    """Each key share: the sharer's signature, this packet, its ledger entry."""
    header, events = ctx.need_header(), ctx.need_events()
    header_sha = hashlib.sha256(ctx.bundle.certificate.header.data).hexdigest()
    names = []
    for signed in ctx.bundle.certificate.shares:
        try:
            sharer = KeyShare.from_bytes(signed.data).sharer
            share = verify_key_share(signed.data, signed.signature, _key(ctx, sharer, "share"))
        except CryptoError as exc:
            raise Failed(f"a key share does not verify: {exc}") from None
        if (share.packet_id, share.header_sha256) != (header.packet_id, header_sha):
            raise Failed(f"the share by {sharer.id} names another packet")
        entry = _event_with(events, "packet.share", signed.signature)
        if (entry.actor is None or entry.actor.liaison != sharer.id
                or entry.details.get("recipient") != share.recipient.id
                or entry.details.get("recipient_key_id") != share.recipient.key_id):
            raise Failed(f"entry {entry.index} does not record the share by {sharer.id}")
        names.append(f"{sharer.id} → {share.recipient.id}")
    _all_present(events, "packet.share", len(ctx.bundle.certificate.shares))
    return f"{len(names)} key shares" + (": " + ", ".join(names) if names else "")


def check_statement(ctx: Context) -> str:
    """The disclosed statement: the sender's signature, bound by the discloser's receipt."""
    disclosure = ctx.bundle.disclosure
    if disclosure is None:
        raise Skipped("no statement disclosed")
    header = ctx.need_header()
    try:
        statement = verify_statement(disclosure.statement.data, disclosure.statement.signature,
                                     _key(ctx, header.sender, "statement"))
    except CryptoError as exc:
        raise Failed(f"the statement does not verify with the sender's key: {exc}") from None
    if statement.packet_id != header.packet_id:
        raise Failed("the statement is about another packet")
    digest = hashlib.sha256(disclosure.statement.data).hexdigest()
    if not any(r.recipient.id == disclosure.disclosed_by and r.statement_sha256 == digest
               for r in ctx.receipts):
        raise Failed(f"no signed receipt of {disclosure.disclosed_by} binds this statement")
    ctx.statement = statement
    return (f"signed by the sender, bound by the receipt of {disclosure.disclosed_by}; "
            f"{len(statement.attachments)} attachment digests")


def check_evidence(ctx: Context, name: str, digest: str) -> str:
    """An evidence file's SHA-256 is one the sender signed in the statement."""
    statement = ctx.statement
    if statement is None:
        raise Failed("no verified statement to compare with (disclose the statement)")
    if statement.message.sha256 == digest:
        return f"{digest}  matches the message"
    for attachment in statement.attachments:
        if attachment.sha256 == digest:
            return f"{digest}  matches attachment {attachment.name!r}"
    raise Failed(f"{digest}  matches no digest the sender signed")


def check_seal(ctx: Context) -> str:
    """The centre's seal over the certificate, by the trusted (or the named) key."""
    trusted = ctx.trust.seal_key
    if trusted is None:
        try:
            trusted = seal_key(ctx.bundle.seal.key)
        except LedgerError as exc:
            raise Failed(f"the seal key is malformed: {exc}") from None
        ctx.notes.append(f"the seal key was taken from the certificate itself ({trusted}); "
                         "compare it with the centre's published key or give --trusted-key")
    try:
        verify_seal(ctx.bundle, trusted)
    except LedgerError as exc:
        raise Failed(str(exc)) from None
    return f"sealed by {trusted}"
