"""Checks of the ledger side: entries, the signed checkpoint, inclusion, witnesses, refresh.

Every proof in a certificate must be against one and the same checkpoint
note; the checkpoint must be signed by a log the policy lists (the court's
policy if given), and cosigned by witnesses so that the quorum holds — on
that checkpoint, or on the refreshed one, which a consistency proof ties to it.
"""

from __future__ import annotations

from client.certificate.context import Context, Failed, Skipped
from client.certificate.messages import M, Message
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


def _parse(raw: bytes, what: Message) -> Entry:
    try:
        return parse_entry(raw)
    except LedgerError as exc:
        raise Failed(M("%(what)s is not a valid ledger entry: %(reason)s", what=what,
                        reason=str(exc))) from None


def check_entries(ctx: Context) -> Message:
    """Entries parse, are in ledger order, and are about this packet (or enrol a key)."""
    cert = ctx.bundle.certificate
    if not cert.events:
        raise Failed(M("the certificate lists no ledger entry"))
    events = [_parse(e.entry, M("event %(number)s", number=n + 1))
              for n, e in enumerate(cert.events)]
    for prev, entry in zip(events, events[1:], strict=False):
        if entry.index <= prev.index:
            raise Failed(M("entry %(index)s follows entry %(previous)s: not in ledger order",
                            index=entry.index, previous=prev.index))
    subject = {"type": "packet", "id": cert.packet_id}
    for entry in events:
        if dict(entry.subject) != subject:
            raise Failed(M("entry %(index)s is about %(subject)s, not the packet",
                            index=entry.index, subject=str(dict(entry.subject))))
    enrolments = [_parse(e.entry, M("an enrolment")) for e in cert.enrolments]
    ctx.events = events
    ctx.indices = [e.index for e in events + enrolments]
    ctx.enrolments = {e.index: e for e in enrolments}
    if len(ctx.enrolments) != len(enrolments):
        raise Failed(M("an enrolment entry is listed twice"))
    return M("%(entries)s entries about packet %(packet)s, %(enrolments)s enrolments",
             entries=len(events), packet=cert.packet_id, enrolments=len(enrolments))


def check_checkpoint(ctx: Context) -> Message:
    """One checkpoint note under every proof, signed by a log of the policy."""
    cert = ctx.bundle.certificate
    try:
        policy = ctx.trust.policy or parse_policy(cert.policy)
    except PolicyError as exc:
        raise Failed(M("the certificate's tlog-policy is invalid: %(reason)s",
                       reason=str(exc))) from None
    try:
        ctx.proofs = [parse_tlog_proof(item.proof) for item in cert.events + cert.enrolments]
    except LedgerError as exc:
        raise Failed(M("a proof is not a C2SP tlog-proof: %(reason)s", reason=str(exc))) from None
    notes = {proof.note for proof in ctx.proofs}
    if len(notes) != 1:
        raise Failed(M("the proofs name %(count)s different checkpoints, not one",
                       count=len(notes)))
    note = notes.pop()
    origin = note.split("\n", 1)[0]
    log = policy.log_for(origin)
    if log is None:
        raise Failed(M("the policy lists no log for the checkpoint origin %(origin)s",
                       origin=repr(origin)))
    try:
        ctx.checkpoint = open_checkpoint(note, log)
    except LedgerError as exc:
        raise Failed(M("the checkpoint signature does not verify: %(reason)s",
                       reason=str(exc))) from None
    ctx.policy, ctx.log = policy, log
    if ctx.trust.policy is None:
        ctx.notes.append(M("the witness policy is the certificate's own (sealed by the centre); "
                           "give --policy to apply the court's"))
    return M("tree size %(size)s, signed by %(log)s", size=ctx.checkpoint.size, log=str(log))


def check_inclusion(ctx: Context) -> Message:
    """Every entry's tlog-proof: its index, and the RFC 9162 path to the checkpoint's root."""
    checkpoint, _, _ = ctx.need_log()
    items = ctx.bundle.certificate.events + ctx.bundle.certificate.enrolments
    if len(ctx.indices) != len(items):
        raise Skipped(M("needs the ledger entries"))
    for item, proof, index in zip(items, ctx.proofs, ctx.indices, strict=True):
        if proof.index != index:
            raise Failed(M("the proof of entry %(index)s is for index %(proven)s",
                           index=index, proven=proof.index))
        try:
            verify_inclusion(leaf_hash(item.entry), index, checkpoint.size, proof.proof,
                             root=checkpoint.root)
        except LedgerError as exc:
            raise Failed(M("entry %(index)s is not in the signed tree: %(reason)s",
                           index=index, reason=str(exc))) from None
    return M("%(entries)s entries proven in the tree of size %(size)s",
             entries=len(items), size=checkpoint.size)


def check_witnesses(ctx: Context) -> Message:
    """The witness quorum of the policy holds on the checkpoint (or on the refreshed one)."""
    checkpoint, policy, log = ctx.need_log()
    note = ctx.proofs[0].note
    where = M("checkpoint %(size)s", size=checkpoint.size)
    try:
        names = cosigners(policy, checkpoint, note)
        refreshed = ctx.bundle.refresh
        if not policy.holds(names) and refreshed is not None:
            newer = open_checkpoint(refreshed.checkpoint, log)
            names = cosigners(policy, newer, refreshed.checkpoint)
            where = M("the refreshed one")
    except LedgerError as exc:
        raise Failed(M("%(reason)s", reason=str(exc))) from None
    cosigned: str | Message = ", ".join(names) if names else M("no listed witness")
    if not policy.holds(names):
        raise Failed(M("quorum %(quorum)s does not hold: cosigned by %(cosigned)s",
                       quorum=repr(policy.quorum), cosigned=cosigned))
    return M("quorum %(quorum)s holds on %(where)s (cosigned by %(cosigned)s)",
             quorum=repr(policy.quorum), where=where, cosigned=cosigned)


def check_refresh(ctx: Context) -> Message:
    """A refresh: a newer checkpoint by the same log, consistent with the certificate's."""
    refreshed = ctx.bundle.refresh
    if refreshed is None:
        raise Skipped(M("no refresh"))
    checkpoint, _, log = ctx.need_log()
    try:
        newer = open_checkpoint(refreshed.checkpoint, log)
        verify_consistency(checkpoint.size, newer.size, checkpoint.root, newer.root,
                           proof=refreshed.consistency)
    except LedgerError as exc:
        raise Failed(M("the refreshed checkpoint does not extend the certificate's: %(reason)s",
                       reason=str(exc))) from None
    return M("tree size %(size)s is a prefix of the signed tree of size %(newer)s",
             size=checkpoint.size, newer=newer.size)
