"""Checks of the ledger side: entries, the signed checkpoint, inclusion, witnesses, refresh.

Every proof in a certificate must be against one and the same checkpoint
note; the checkpoint must be signed by a log the policy lists (the court's
policy if given), and cosigned by witnesses so that the quorum holds — on
that checkpoint, or on the refreshed one, which a consistency proof ties to it.
"""

from __future__ import annotations

from client.certificate.context import Context, Failed, Skipped
from custody import PolicyError, cosigners, parse_policy
from ledger import (
    Entry,
    LedgerError,
    leaf_hash,
    open_checkpoint,
    parse_entry,
    parse_tlog_proof,
    verify_consistency,
    verify_inclusion,
)


def _parse(raw: bytes, what: str) -> Entry:
    try:
        return parse_entry(raw)
    except LedgerError as exc:
        raise Failed(f"{what} is not a valid ledger entry: {exc}") from None


def check_entries(ctx: Context) -> str:
    """Entries parse, are in ledger order, and are about this packet (or enrol a key)."""
    cert = ctx.bundle.certificate
    if not cert.events:
        raise Failed("the certificate lists no ledger entry")
    events = [_parse(e.entry, f"event {n + 1}") for n, e in enumerate(cert.events)]
    for prev, entry in zip(events, events[1:], strict=False):
        if entry.index <= prev.index:
            raise Failed(f"entry {entry.index} follows entry {prev.index}: not in ledger order")
    subject = {"type": "packet", "id": cert.packet_id}
    for entry in events:
        if dict(entry.subject) != subject:
            raise Failed(f"entry {entry.index} is about {dict(entry.subject)}, not the packet")
    enrolments = [_parse(e.entry, "an enrolment") for e in cert.enrolments]
    ctx.events = events
    ctx.indices = [e.index for e in events + enrolments]
    ctx.enrolments = {e.index: e for e in enrolments}
    if len(ctx.enrolments) != len(enrolments):
        raise Failed("an enrolment entry is listed twice")
    return f"{len(events)} entries about packet {cert.packet_id}, {len(enrolments)} enrolments"


def check_checkpoint(ctx: Context) -> str:
    """One checkpoint note under every proof, signed by a log of the policy."""
    cert = ctx.bundle.certificate
    try:
        policy = ctx.trust.policy or parse_policy(cert.policy)
    except PolicyError as exc:
        raise Failed(f"the certificate's tlog-policy is invalid: {exc}") from None
    try:
        ctx.proofs = [parse_tlog_proof(item.proof) for item in cert.events + cert.enrolments]
    except LedgerError as exc:
        raise Failed(f"a proof is not a C2SP tlog-proof: {exc}") from None
    notes = {proof.note for proof in ctx.proofs}
    if len(notes) != 1:
        raise Failed(f"the proofs name {len(notes)} different checkpoints, not one")
    note = notes.pop()
    origin = note.split("\n", 1)[0]
    log = policy.log_for(origin)
    if log is None:
        raise Failed(f"the policy lists no log for the checkpoint origin {origin!r}")
    try:
        ctx.checkpoint = open_checkpoint(note, log)
    except LedgerError as exc:
        raise Failed(f"the checkpoint signature does not verify: {exc}") from None
    ctx.policy, ctx.log = policy, log
    if ctx.trust.policy is None:
        ctx.notes.append("the witness policy is the certificate's own (sealed by the centre); "
                         "give --policy to apply the court's")
    return f"tree size {ctx.checkpoint.size}, signed by {log}"


def check_inclusion(ctx: Context) -> str:
    """Every entry's tlog-proof: its index, and the RFC 9162 path to the checkpoint's root."""
    checkpoint, _, _ = ctx.need_log()
    items = ctx.bundle.certificate.events + ctx.bundle.certificate.enrolments
    if len(ctx.indices) != len(items):
        raise Skipped("needs the ledger entries")
    for item, proof, index in zip(items, ctx.proofs, ctx.indices, strict=True):
        if proof.index != index:
            raise Failed(f"the proof of entry {index} is for index {proof.index}")
        try:
            verify_inclusion(leaf_hash(item.entry), index, checkpoint.size, proof.proof,
                             root=checkpoint.root)
        except LedgerError as exc:
            raise Failed(f"entry {index} is not in the signed tree: {exc}") from None
    return f"{len(items)} entries proven in the tree of size {checkpoint.size}"


def check_witnesses(ctx: Context) -> str:
    """The witness quorum of the policy holds on the checkpoint (or on the refreshed one)."""
    checkpoint, policy, log = ctx.need_log()
    note = ctx.proofs[0].note
    where = f"checkpoint {checkpoint.size}"
    try:
        names = cosigners(policy, checkpoint, note)
        refreshed = ctx.bundle.refresh
        if not policy.holds(names) and refreshed is not None:
            newer = open_checkpoint(refreshed.checkpoint, log)
            names, where = cosigners(policy, newer, refreshed.checkpoint), "the refreshed one"
    except LedgerError as exc:
        raise Failed(str(exc)) from None
    cosigned = ", ".join(names) or "no listed witness"
    if not policy.holds(names):
        raise Failed(f"quorum {policy.quorum!r} does not hold: cosigned by {cosigned}")
    return f"quorum {policy.quorum!r} holds on {where} (cosigned by {cosigned})"


def check_refresh(ctx: Context) -> str:
    """A refresh: a newer checkpoint by the same log, consistent with the certificate's."""
    refreshed = ctx.bundle.refresh
    if refreshed is None:
        raise Skipped("no refresh")
    checkpoint, _, log = ctx.need_log()
    try:
        newer = open_checkpoint(refreshed.checkpoint, log)
        verify_consistency(checkpoint.size, newer.size, checkpoint.root, newer.root,
                           proof=refreshed.consistency)
    except LedgerError as exc:
        raise Failed(f"the refreshed checkpoint does not extend the certificate's: "
                     f"{exc}") from None
    return f"tree size {checkpoint.size} is a prefix of the signed tree of size {newer.size}"
