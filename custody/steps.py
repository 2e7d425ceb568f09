"""The custody narrative: ordered hand-offs derived from the ledger entries about a packet.

A chain-of-custody record lists, for each transfer, who released the item,
who received it, when, and under which authority and legal basis. Here the
item is the packet (its ciphertext and the key that opens it); the centre
holds the ciphertext between the sender's submission and each recipient's
retrieval. The narrative is a pure function of the packet header and the
entries, so the issuer writes it and a verifier recomputes and compares it.

Only granted hand-offs are listed: submission, key delivery, ciphertext
delivery, signed receipt, approval and act of onward sharing, judicial
permission, withdrawal, and the certificate's issue. Listings, reads of
receipts and refusals stay in the certificate's events, not in the narrative.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from crypto import PacketHeader
from custody.bundle import CustodyStep
from ledger import Entry, format_time

CENTRE = "centre"
ISSUE_ACTION = "certificate.issue"
PERMISSION_ACTION = "packet.judicial_permission"

Row = tuple[str, str | None, str | None, str]
"""event, released_by, received_by, authority"""


def _actor(entry: Entry) -> str:
    return entry.actor.liaison if entry.actor is not None else "system"


def _text(details: Mapping[str, Any], key: str) -> str:
    value = details.get(key)
    return str(value) if value is not None else "-"


def _submit(header: PacketHeader, entry: Entry, sharers: dict[str, str]) -> Row | None:
    meta = header.meta
    authority = (f"channel {meta.channel_id}; {meta.classification}; handling {meta.handling};"
                 f" evaluation {meta.evaluation}")
    if meta.case_reference:
        authority += f"; case {meta.case_reference}"
    return "submitted (encrypted)", _actor(entry), CENTRE, authority


def _retrieve(header: PacketHeader, entry: Entry, sharers: dict[str, str]) -> Row | None:
    if entry.details.get("key_delivered") is not True:
        return None
    who = _actor(entry)
    if entry.details.get("via") == "share":
        authority = f"key shared by {sharers.get(who, '?')}"
    else:
        authority = "addressed by the sender"
    return f"key delivered (key {_text(entry.details, 'key_id')})", CENTRE, who, authority


def _download(header: PacketHeader, entry: Entry, sharers: dict[str, str]) -> Row | None:
    what = f"ciphertext stream {_text(entry.details, 'stream')} delivered"
    if "range" in entry.details:
        what += f" (bytes {_text(entry.details, 'range')})"
    return what, CENTRE, _actor(entry), "holder of the packet key"


def _receipt(header: PacketHeader, entry: Entry, sharers: dict[str, str]) -> Row | None:
    return ("receipt signed", None, _actor(entry),
            f"signed receipt (key {_text(entry.details, 'key_id')})")


def _share(header: PacketHeader, entry: Entry, sharers: dict[str, str]) -> Row | None:
    recipient = _text(entry.details, "recipient")
    sharers[recipient] = _actor(entry)
    approval = entry.details.get("approval")
    authority = (f"originator's approval {approval}" if approval
                 else f"handling {header.meta.handling}: no approval needed")
    return "key shared onward", _actor(entry), recipient, authority


def _approve(header: PacketHeader, entry: Entry, sharers: dict[str, str]) -> Row | None:
    return ("onward sharing approved", _actor(entry), _text(entry.details, "recipient"),
            f"originator; request {_text(entry.details, 'request')}")


def _withdraw(header: PacketHeader, entry: Entry, sharers: dict[str, str]) -> Row | None:
    return ("withdrawn by the originator", _actor(entry), None,
            f"originator: {_text(entry.details, 'reason')}")


def _permission(header: PacketHeader, entry: Entry, sharers: dict[str, str]) -> Row | None:
    return ("judicial use permitted", _actor(entry), _text(entry.details, "court"),
            f"originator (handling {header.meta.handling})")


def _issue(header: PacketHeader, entry: Entry, sharers: dict[str, str]) -> Row | None:
    return ("custody certificate issued", CENTRE, _text(entry.details, "issued_to"),
            f"requested by {_actor(entry)}; purpose: {_text(entry.details, 'purpose')}")


_STEPS: dict[str, Callable[[PacketHeader, Entry, dict[str, str]], Row | None]] = {
    "packet.submit": _submit, "packet.retrieve": _retrieve, "packet.download": _download,
    "packet.receipt": _receipt, "packet.share": _share, "packet.share_approve": _approve,
    "packet.withdraw": _withdraw, PERMISSION_ACTION: _permission, ISSUE_ACTION: _issue,
}


def custody_steps(header: PacketHeader, entries: Sequence[Entry]) -> tuple[CustodyStep, ...]:
    """The narrative of ``entries`` (about the packet of ``header``, in ledger order)."""
    sharers: dict[str, str] = {}
    steps: list[CustodyStep] = []
    for entry in entries:
        make = _STEPS.get(entry.action)
        row = make(header, entry, sharers) if make and entry.outcome == "granted" else None
        if row is not None:
            event, released, received, authority = row
            steps.append(CustodyStep(entry.index, format_time(entry.time), event, released,
                                     received, authority, header.meta.legal_basis))
    return tuple(steps)
