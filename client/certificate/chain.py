"""Checks of the custody chain: who held the packet when, by which right, and the issue.

Rules, over the granted entries in ledger order (refusals may appear anywhere):

- the first granted entry is the submission, by the sender the header names
  with the key it names, carrying the header signature and the header digest;
- a key delivery, ciphertext delivery or receipt is by a holder: a header
  recipient (with the key the header names) or a share recipient whose share
  came earlier (with the key the share names); the originator may read its own;
- a share is by a holder, to a new liaison; an H2 share names the
  originator's earlier approval of a request by that holder for that
  recipient, and spends it (one share per approval);
- approvals, withdrawal, reading receipts and judicial permission are the
  originator's; after a withdrawal, nothing is delivered to anyone else;
- times never go backwards;
- the last entry is this certificate's issue (its id, court, purpose, issuer
  and time); for H1 the originator's permission for that court comes before it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from client.certificate.context import Context, Failed
from client.certificate.messages import M, Message, Time
from crypto import PacketHeader, b64encode
from custody import ISSUE_ACTION, PERMISSION_ACTION, custody_steps
from ledger import Entry, format_time

SENDER_ONLY = frozenset({"packet.share_approve", "packet.withdraw", "packet.receipts",
                         PERMISSION_ACTION})
HOLDER_ONLY = frozenset({"packet.receipt", "packet.share", "packet.share_request"})
DELIVERIES = frozenset({"packet.retrieve", "packet.download", "packet.share",
                        "packet.share_request"})
# Certificate requests and collections are by whoever may have one (a coordinator too).
ANYONE = frozenset({ISSUE_ACTION, "certificate.collect", "certificate.refresh"})


@dataclass
class _Chain:
    header: PacketHeader
    holders: dict[str, str]
    approved: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Unspent approvals: request id -> (holder who asked, recipient)."""
    withdrawn: bool = False

    @property
    def sender(self) -> str:
        """The originator's liaison id."""
        return self.header.sender.id


def _who(entry: Entry) -> str:
    if entry.actor is None:
        raise Failed(M("entry %(index)s (%(action)s) is by the system, not a liaison",
                       index=entry.index, action=entry.action))
    return entry.actor.liaison


def _submission(chain: _Chain, entry: Entry, header_bytes: bytes, signature: bytes) -> None:
    sender = chain.header.sender
    if (entry.action != "packet.submit" or entry.actor is None
            or (entry.actor.liaison, entry.actor.key) != (sender.id, sender.key_id)):
        raise Failed(M("the first granted entry (%(index)s, %(action)s) is not the submission "
                       "by the sender %(sender)s", index=entry.index, action=entry.action,
                       sender=sender.id))
    if (entry.signature != b64encode(signature)
            or entry.details.get("header_sha256") != hashlib.sha256(header_bytes).hexdigest()):
        raise Failed(M("the submission entry %(index)s does not carry the header signature "
                       "and digest", index=entry.index))


def _step(chain: _Chain, entry: Entry) -> None:
    who, action, details = _who(entry), entry.action, entry.details
    is_sender, held = who == chain.sender, chain.holders.get(who)
    if action == "packet.submit":
        raise Failed(M("entry %(index)s: a second submission", index=entry.index))
    if action in SENDER_ONLY and not is_sender:
        raise Failed(M("entry %(index)s: %(action)s by %(who)s, who is not the originator",
                       index=entry.index, action=action, who=who))
    if action in HOLDER_ONLY and held is None:
        raise Failed(M("entry %(index)s: %(action)s by %(who)s, who holds no key",
                       index=entry.index, action=action, who=who))
    if action not in ANYONE | SENDER_ONLY and held is None and not is_sender:
        raise Failed(M("entry %(index)s: %(action)s by %(who)s, who is no party to the packet",
                       index=entry.index, action=action, who=who))
    if chain.withdrawn and action in DELIVERIES and not is_sender:
        raise Failed(M("entry %(index)s: %(action)s for %(who)s after the withdrawal",
                       index=entry.index, action=action, who=who))
    if action in ("packet.retrieve", "packet.receipt") and details.get("key_delivered", True):
        if held is None or details.get("key_id") != held:
            raise Failed(M("entry %(index)s: %(who)s used key %(key)s, not the key the packet "
                           "was wrapped to", index=entry.index, who=who,
                           key=str(details.get("key_id"))))
    _effects(chain, entry, who)


def _effects(chain: _Chain, entry: Entry, who: str) -> None:
    details = entry.details
    if entry.action == "packet.withdraw":
        chain.withdrawn = True
    elif entry.action == "packet.share_approve":
        chain.approved[str(details.get("request"))] = (str(details.get("requested_by")),
                                                        str(details.get("recipient")))
    elif entry.action == "packet.share":
        recipient = str(details.get("recipient"))
        if recipient in chain.holders or recipient == chain.sender:
            raise Failed(M("entry %(index)s: %(recipient)s held the packet already",
                           index=entry.index, recipient=recipient))
        if chain.header.meta.handling == "H2":
            _spend_approval(chain, entry, who, recipient)
        chain.holders[recipient] = str(details.get("recipient_key_id"))


def _spend_approval(chain: _Chain, entry: Entry, who: str, recipient: str) -> None:
    """An H2 share spends the approval it names, which must answer ``who``'s request
    for ``recipient``: an approval given to one holder is no licence for another."""
    granted = chain.approved.pop(str(entry.details.get("approval")), None)
    if granted != (who, recipient):
        raise Failed(M("entry %(index)s: H2 share by %(who)s to %(recipient)s without the "
                       "originator's approval of that holder's request", index=entry.index,
                       who=who, recipient=recipient))


def check_chain(ctx: Context) -> Message:
    """The granted entries form a coherent chain of custody (module docstring)."""
    header, events = ctx.need_header(), ctx.need_events()
    cert = ctx.bundle.certificate
    chain = _Chain(header, {r.id: r.key_id for r in header.recipients})
    granted = [e for e in events if e.outcome == "granted"]
    if not granted:
        raise Failed(M("no granted entry: the packet was never submitted"))
    _submission(chain, granted[0], cert.header.data, cert.header.signature)
    for entry in granted[1:]:
        _step(chain, entry)
    for prev, entry in zip(events, events[1:], strict=False):
        if entry.time < prev.time:
            raise Failed(M("entry %(index)s is dated before entry %(previous)s",
                           index=entry.index, previous=prev.index))
    holders = ", ".join(sorted(chain.holders))
    granted_n, refused_n = len(granted), len(events) - len(granted)
    if chain.withdrawn:
        return M("%(granted)s granted and %(refused)s refused actions; held by %(holders)s; "
                 "withdrawn", granted=granted_n, refused=refused_n, holders=holders)
    return M("%(granted)s granted and %(refused)s refused actions; held by %(holders)s",
             granted=granted_n, refused=refused_n, holders=holders)


def check_narrative(ctx: Context) -> Message:
    """The custody narrative is exactly the one the entries give."""
    header, events = ctx.need_header(), ctx.need_events()
    derived = custody_steps(header, events)
    if derived != ctx.bundle.certificate.custody:
        for n, (want, got) in enumerate(zip(derived, ctx.bundle.certificate.custody,
                                            strict=False)):
            if want != got:
                raise Failed(M("step %(number)s says %(got)s but the ledger gives %(want)s",
                               number=n + 1, got=str(got), want=str(want)))
        raise Failed(M("the narrative has %(steps)s steps, the ledger gives %(derived)s",
                       steps=len(ctx.bundle.certificate.custody), derived=len(derived)))
    return M("%(count)s hand-offs, as the ledger entries give them", count=len(derived))


def check_issue(ctx: Context) -> Message:
    """The last entry issues this certificate; for H1 the court was permitted first."""
    header, events = ctx.need_header(), ctx.need_events()
    cert = ctx.bundle.certificate
    last = events[-1]
    expected = {"certificate": cert.id, "issued_to": cert.issued_to, "purpose": cert.purpose}
    if (last.action != ISSUE_ACTION or last.outcome != "granted"
            or {k: last.details.get(k) for k in expected} != expected):
        raise Failed(M("the last entry (%(index)s, %(action)s) does not issue this certificate "
                       "to %(court)s for %(purpose)s", index=last.index, action=last.action,
                       court=repr(cert.issued_to), purpose=repr(cert.purpose)))
    if last.actor is None or last.actor.liaison != cert.issued_by:
        raise Failed(M("the issue entry is not by %(issuer)s", issuer=cert.issued_by))
    if format_time(last.time) != cert.issued_at:
        raise Failed(M("issued at %(issued)s, but the entry is dated %(dated)s",
                       issued=Time(cert.issued_at), dated=Time(format_time(last.time))))
    if header.meta.handling == "H1" and not any(
            e.action == PERMISSION_ACTION and e.outcome == "granted"
            and e.actor is not None and e.actor.liaison == header.sender.id
            and e.details.get("court") == cert.issued_to for e in events[:-1]):
        raise Failed(M("H1: no permission of the originator for %(court)s",
                       court=repr(cert.issued_to)))
    return M("entry %(index)s: issued by %(issuer)s at %(issued)s", index=last.index,
             issuer=cert.issued_by, issued=Time(cert.issued_at))
