"""Building a custody certificate from the database, on a cosigned checkpoint covering it.

Everything in the bundle is read back from what was stored when each action
happened: the header bytes and signature as submitted, receipts and key
shares as signed, the ledger entries' exact bytes, and RFC 9162 inclusion
proofs (as C2SP tlog-proofs) against the checkpoint ``app.certificates.sealing``
chose, whose note carries the witnesses' cosignatures: the seal covers them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from nacl.signing import SigningKey
from sqlalchemy.orm import Session

from app.certificates import repository as repo
from app.certificates.errors import CertificatesUnavailable
from app.ledger import enrolment_indices, inclusion_proofs, indices_about, raw_entries
from app.models.certificate import CustodyCertificate
from app.packets import repository as packets
from app.witnesses import repository as witnesses
from crypto import KeyShare, LiaisonPublicKeys, PacketHeader, b64encode
from custody import (
    Bundle,
    Certificate,
    KeyRecord,
    LoggedEntry,
    Person,
    Policy,
    PolicyError,
    Signed,
    custody_steps,
    make_policy,
    seal_certificate,
)
from ledger import (
    NoteFormatError,
    NoteVerifier,
    StoredCheckpoint,
    TlogProof,
    format_time,
    parse_entry,
)


def centre_policy(session: Session, ledger_key: str, quorum: int) -> Policy:
    """The centre's tlog-policy: the ledger key, every active witness, ``quorum`` of them."""
    try:
        keys = {w.name: NoteVerifier.from_string(w.verifier_key)
                for w in witnesses.active(session)}
        return make_policy(NoteVerifier.from_string(ledger_key), keys, quorum)
    except (PolicyError, NoteFormatError) as exc:
        raise CertificatesUnavailable(f"no witness policy can be stated: {exc}") from None


def _key_records(session: Session, key_ids: set[str]
                 ) -> tuple[tuple[KeyRecord, ...], dict[int, bytes]]:
    """Key sets and the entries that enrolled (or rotated in) each, in three reads."""
    found = repo.keys(session, key_ids)
    if len(found) != len(key_ids):
        raise CertificatesUnavailable(f"a key of {sorted(key_ids)} is not registered")
    raw = raw_entries(session, enrolment_indices(session, [k.liaison_id for k in found]))
    enrolled: dict[tuple[str, str], int] = {}
    for position, data in sorted(raw.items()):
        entry = parse_entry(data)
        enrolled.setdefault((entry.subject["id"], str(entry.details.get("key_id"))), position)
    records = []
    for key in found:
        index = enrolled.get((key.liaison_id, key.key_id))
        if index is None:
            raise CertificatesUnavailable(f"no ledger entry enrolled key {key.key_id}")
        public = LiaisonPublicKeys(key.signing_public, key.encryption_public)
        records.append(KeyRecord(key.liaison_id, public, index))
    return tuple(records), {r.enrolment: raw[r.enrolment] for r in records}


def _logged(proofs: Mapping[int, list[bytes]], raw: dict[int, bytes], indices: Iterable[int],
            checkpoint: StoredCheckpoint) -> tuple[LoggedEntry, ...]:
    return tuple(LoggedEntry(raw[i], TlogProof(i, tuple(proofs[i]), checkpoint.note).text())
                 for i in indices)


def _signed_objects(session: Session, packet_id: str, logged: set[str]
                    ) -> tuple[tuple[Signed, ...], tuple[Signed, ...], set[str]]:
    """Receipts and key shares whose entries are among the events, and their signers' keys.

    ``logged``: the signatures (base64) the events carry. A receipt or share
    recorded after the issue is not part of this certificate.
    """
    keys: set[str] = set()
    receipts: list[Signed] = []
    for r in packets.receipts(session, packet_id):
        if b64encode(r.signature) in logged:
            receipts.append(Signed(r.receipt, r.signature))
            keys.add(r.key_id)
    shares: list[Signed] = []
    for held in repo.shares(session, packet_id):
        if held.share is not None and held.share_signature is not None and \
                b64encode(held.share_signature) in logged:
            shares.append(Signed(held.share, held.share_signature))
            keys.add(KeyShare.from_bytes(held.share).sharer.key_id)
    return tuple(receipts), tuple(shares), keys


def _people(session: Session, named: set[str]) -> tuple[Person, ...]:
    """The directory's name, state and role of every liaison the certificate names."""
    return tuple(Person(p.id, p.name, p.state_code, p.role.value)
                 for p in repo.liaisons(session, named))


def build_bundle(session: Session, issued: CustodyCertificate, *, policy: Policy,
                 seal: SigningKey, origin: str, stored: StoredCheckpoint) -> Bundle:
    """The sealed certificate for ``issued``, proven against the signed checkpoint ``stored``."""
    if stored.size <= issued.ledger_index:
        raise CertificatesUnavailable("the checkpoint does not cover the certificate")
    packet = packets.get(session, issued.packet_id)
    if packet is None:
        raise CertificatesUnavailable("the packet is gone")
    header = PacketHeader.from_bytes(packet.header)
    events = indices_about(session, packet.id, issued.ledger_index)
    raw = raw_entries(session, events)
    parsed = [parse_entry(raw[i]) for i in events]
    logged = {e.signature for e in parsed if e.signature is not None}
    receipts, shares, signer_keys = _signed_objects(session, packet.id, logged)
    records, enrolments = _key_records(session, {packet.sender_key_id} | signer_keys)
    raw.update(enrolments)
    enrolled = sorted(enrolments)
    # RFC 9162 §2.1.3.1 paths against the signed checkpoint, from the kernel
    # (``Ledger.inclusion_proof``: the trust rule is checked, not assumed).
    proofs = inclusion_proofs(session, [*events, *enrolled], stored)
    certificate = Certificate(
        id=issued.id, packet_id=packet.id, issued_to=issued.issued_to, purpose=issued.purpose,
        issued_at=format_time(issued.issued_at), issued_by=issued.issued_by,
        header=Signed(packet.header, packet.signature),
        keys=records,
        events=_logged(proofs, raw, events, stored),
        enrolments=_logged(proofs, raw, enrolled, stored),
        receipts=receipts, shares=shares, policy=policy.text(),
        custody=custody_steps(header, parsed),
        people=_people(session, {e.actor.liaison for e in parsed if e.actor is not None}
                       | {r.liaison for r in records} | {issued.issued_by}
                       | {header.sender.id} | {r.id for r in header.recipients}),
    )
    return seal_certificate(certificate, seal, origin)
